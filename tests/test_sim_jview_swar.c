/* The journal record reader's tests again, against the reader built with
 * its portable scan (8 bytes in a 64-bit word, whose flags above the
 * lowest may be false), which a machine without SSE2 runs. */
#define SIM_JVIEW_NO_SSE2 1
#include "sim_jview.c"

#include "test_sim_jview.c"
