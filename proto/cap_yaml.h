/* A bounded YAML reader (libyaml events -> a small node tree) for the
 * project's YAML inputs: safety policies and simulator scenarios.
 *
 * What it accepts is deliberately narrower than YAML 1.1, because every
 * input is untrusted:
 *   - exactly one document (an empty stream is a document with no root);
 *   - no aliases or anchors (they allow exponential expansion);
 *   - no explicit tags other than the standard tag:yaml.org,2002:* ones;
 *   - mapping keys must be scalars and unique within their mapping;
 *   - bounds on input size, nesting depth, node count and scalar length.
 * Every node keeps its 1-based line and column, so callers can name
 * FILE:LINE:COLUMN in their errors. */
#ifndef CAP_YAML_H
#define CAP_YAML_H

#include <stddef.h>
#include <stdint.h>

typedef enum { CAP_YAML_SCALAR, CAP_YAML_SEQ, CAP_YAML_MAP } cap_yaml_kind;

typedef struct cap_yaml_node cap_yaml_node;
typedef struct {
    cap_yaml_node *key;  /* always a scalar */
    cap_yaml_node *value;
} cap_yaml_pair;

struct cap_yaml_node {
    cap_yaml_kind kind;
    int line, column;  /* 1-based start of the node */
    /* Scalars: NUL-terminated text (may contain no NUL: rejected on input). */
    char *text;
    size_t len;
    int quoted;        /* quoted or !!str-tagged: always a string */
    /* Sequences: items; mappings: pairs in document order. */
    cap_yaml_node **items;
    cap_yaml_pair *pairs;
    size_t n;
    int origin;        /* 0: the parsed text; k > 0: put there by cap_yaml_set (origin k) */
};

typedef struct {
    size_t max_bytes;   /* input size */
    int max_depth;      /* nesting of sequences and mappings */
    size_t max_nodes;   /* nodes in the document */
    size_t max_scalar;  /* bytes in one scalar */
} cap_yaml_bounds;

/* Defaults: 4 MiB, depth 64, 200000 nodes, 64 KiB a scalar. */
cap_yaml_bounds cap_yaml_bounds_default(void);

/* An error in a YAML input or in what a caller found in it: where (1-based
 * line and column, 0 when unknown), which key path ("rules[2].decision"),
 * and why. */
/* Longest key path kept, in bytes with the NUL. */
#define CAP_YAML_PATH_MAX 192

typedef struct {
    int err;
    int line, column;
    int origin;        /* the node's origin (0: the parsed text, or none), see cap_yaml_set */
    char path[CAP_YAML_PATH_MAX];
    char reason[256];
} cap_yaml_diag;

/* Key paths for messages, built into out (CAP_YAML_PATH_MAX bytes):
 * "base.key" ("key" when base is ""), and "base[i]". A path too long for
 * the buffer ends in "..." so that the cut is visible. */
void cap_yaml_path_key(char *out, const char *base, const char *key);
void cap_yaml_path_index(char *out, const char *base, size_t i);

/* Records an error at node (NULL: no position) and returns err. */
int cap_yaml_fail(cap_yaml_diag *d, int err, const cap_yaml_node *node, const char *path,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Formats "FILE:LINE:COLUMN: PATH: REASON" (parts that are unknown are left
 * out) into buf and returns buf. */
const char *cap_yaml_diag_format(const cap_yaml_diag *d, const char *file, char *buf, size_t n);

/* A parsed document; owns every node. */
typedef struct cap_yaml_doc cap_yaml_doc;

/* Parses text[0..len) (need not be NUL-terminated). On success *out is a
 * document (free with cap_yaml_free) and 0 is returned; on failure *out is
 * NULL, d says where and why, and CAP_EYAML (or CAP_ENOMEM) is returned. */
int cap_yaml_parse(const char *text, size_t len, const cap_yaml_bounds *bounds,
                   cap_yaml_doc **out, cap_yaml_diag *d);
void cap_yaml_free(cap_yaml_doc *doc);

/* Sets one value by key path, as a command-line override does.
 * `assignment` is PATH=VALUE:
 *   PATH   a key, then any number of .KEY and [N] (N a sequence index from
 *          0). A key holding '.', '[', ']', '"' or '=' is written in double
 *          quotes, with \" and \\ inside: meta_labels."mcp.action".
 *   VALUE  YAML read under bounds (NULL: the defaults), like the document:
 *          a scalar (800, 2ms, "text"), a flow collection
 *          ({dist: fixed, median: 2ms}, [a, b]); empty means null.
 * The node at PATH is replaced by VALUE. A key its mapping lacks is added
 * at the end; a missing or null node where the path needs a mapping
 * becomes one; an index must name an item that exists. Every node of
 * VALUE and every node added gets `origin` (> 0), which a later error about
 * them carries in its diag, so that a caller can say which override it
 * was. 0, or CAP_EYAML (a bad path, a path the document cannot take, a
 * bad value, a bound crossed; nothing changed) or CAP_ENOMEM, with d
 * saying why and d->origin = origin. The document stays valid either way. */
int cap_yaml_set(cap_yaml_doc *doc, const char *assignment, const cap_yaml_bounds *bounds,
                 int origin, cap_yaml_diag *d);

/* The length of the PATH of a PATH=VALUE assignment (the offset of its
 * '='), checked as cap_yaml_set reads it: 0, or CAP_EYAML with d saying
 * why (d->origin = 0). */
int cap_yaml_set_path_len(const char *assignment, size_t *len, cap_yaml_diag *d);

/* node as one line of YAML flow text that reads back to the same tree
 * (a mapping as {k: v}, a sequence as [a, b]; a quoted scalar, and a plain
 * one holding what flow text cannot, double-quoted with \", \\ and \xNN
 * escapes). 0, or CAP_EFULL when it needs more than cap bytes (with the
 * NUL), or CAP_EINVAL. */
int cap_yaml_flow(const cap_yaml_node *node, char *buf, size_t cap);

/* The root node, or NULL for an empty document. Owned by doc. */
const cap_yaml_node *cap_yaml_root(const cap_yaml_doc *doc);

/* The value for key in a mapping, or NULL when absent (or not a mapping). */
const cap_yaml_node *cap_yaml_get(const cap_yaml_node *map, const char *key);

/* Scalar readers. Each returns 0, or CAP_EYAML with d naming node and path
 * when the node has the wrong kind or text.
 *   str:  any scalar (a plain null - "", "~", "null" - reads as "");
 *         *out is owned by the document.
 *   int:  a plain decimal integer in [min, max].
 *   bool: plain true/false (any case).
 *   num:  a plain decimal number (integer or fraction, optional exponent). */
int cap_yaml_str(const cap_yaml_node *node, const char *path, const char **out, cap_yaml_diag *d);
int cap_yaml_int(const cap_yaml_node *node, const char *path, int64_t min, int64_t max,
                 int64_t *out, cap_yaml_diag *d);
int cap_yaml_bool(const cap_yaml_node *node, const char *path, int *out, cap_yaml_diag *d);
int cap_yaml_num(const cap_yaml_node *node, const char *path, double *out, cap_yaml_diag *d);

/* True for a plain scalar spelling null ("", "~", "null", "Null", "NULL"). */
int cap_yaml_is_null(const cap_yaml_node *node);

/* Checks the node is a mapping / a sequence; otherwise records
 * "expected a mapping/sequence" and returns CAP_EYAML. A plain null is
 * accepted as an empty collection (returns 0 with n == 0 semantics: callers
 * read node->n only when node->kind matches). */
int cap_yaml_expect(const cap_yaml_node *node, cap_yaml_kind kind, const char *path,
                    cap_yaml_diag *d);

/* The number of items or pairs of a collection node, 0 for a null. */
size_t cap_yaml_count(const cap_yaml_node *node);

#endif
