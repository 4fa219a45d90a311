/* Helpers shared by the capsim subcommands: bounded input, atomic output,
 * option parsing, and the exit-code convention
 *   0 ok, 1 input rejected (a packet, a signature, a fixture), 2 usage or
 *   an unreadable/unwritable file. */
#ifndef CAP_CLI_H
#define CAP_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cap_decode.h"
#include "cap_trace.h"

enum { CLI_OK = 0, CLI_REJECTED = 1, CLI_USAGE = 2 };

/* Reads FILE, or standard input for "-", up to max bytes; one byte more is
 * read so that an oversize input is seen as such (*len = max + 1). *out is
 * NUL-terminated, freed with free(). Prints the error and returns -1. */
int cli_read_input(const char *cmd, const char *path, size_t max, uint8_t **out, size_t *len);

/* Writes data to path atomically (temporary file + rename), or to standard
 * output when path is NULL or "-". Prints the error and returns -1. */
int cli_write_output(const char *cmd, const char *path, const void *data, size_t len);

/* An output file being written: a temporary file beside path, renamed
 * over path when it is complete (so a reader never sees half a file), or
 * standard output when path is NULL or "-". */
typedef struct {
    FILE *f;
    const char *path; /* NULL for standard output */
    char *tmp;        /* the temporary file's name (owned) */
} cli_output;

/* Report documents (--json F|-, --junit F|-) of a command that also prints
 * text for people. At most one of them may be "-": it then has standard
 * output to itself, and the text goes to standard error meanwhile.
 * cli_docs_check refuses both "-" (the error printed, -1). cli_docs_open
 * sends standard output to standard error when one is "-", keeping the
 * real one in *doc_fd (-1 when none is); -1 on an error (printed). */
int cli_docs_check(const char *cmd, const char *json, const char *junit);
int cli_docs_open(const char *cmd, const char *json, const char *junit, int *doc_fd);

/* Writes a document made by a report writer (made: CAP_OK, or why it
 * could not be made) to dest, a file (atomically) or "-" (the standard
 * output kept in doc_fd), and frees doc. Returns rc, or CLI_USAGE when the
 * document could not be made or written (the error printed, naming opt). */
int cli_docs_write(const char *cmd, const char *opt, const char *dest, int doc_fd, char *doc,
                   size_t len, int made, int rc);

/* Gives standard output back (after cli_docs_open) and closes doc_fd. */
void cli_docs_close(int doc_fd);

/* Starts an output. Prints the error and returns -1. */
int cli_output_open(const char *cmd, const char *path, cli_output *out);

/* Finishes an output: keep != 0 flushes it and moves it into place, 0
 * discards it (a file is removed; what went to standard output stays).
 * Prints the error and returns -1 when keeping fails. */
int cli_output_close(const char *cmd, cli_output *out, int keep);

/* Parses a size option value ("1048576", "64K", "1M"); returns -1 on error. */
int cli_parse_size(const char *s, size_t *out);

/* Handles one bounds option (--max-packet, --max-trust-packet, --max-string,
 * --max-entries, --max-depth) at argv[*i], consuming its value.
 * Returns 1 if handled, 0 if argv[*i] is not a bounds option, -1 on error. */
int cli_bounds_option(const char *cmd, int argc, char **argv, int *i, cap_bounds *b);

/* Fetches the value of a trace-format option at argv[*i] (--format,
 * --to): "binary", "jsonl", and "auto" when allow_auto. Prints the error
 * and returns -1. */
int cli_trace_format(const char *cmd, int argc, char **argv, int *i, int allow_auto,
                     cap_trace_format *out);

/* The help text of the bounds options, for the subcommands that take them. */
extern const char cli_bounds_help[];

/* Prints "capsim CMD: " and a formatted message to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints a decode/verify diagnostic as one line: "capsim CMD: FILE: ...". */
void cli_diag(const char *cmd, const char *path, const cap_diag *d);

/* True when --help or -h is among the arguments. */
int cli_wants_help(int argc, char **argv);

/* Fetches the value of an option that takes one (argv[*i + 1]). */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);

#endif
