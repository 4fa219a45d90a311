# fuzz targets: see below
