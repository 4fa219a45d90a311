/* Topic globs with the semantics of Go's path.Match, which is what the
 * Cordum safety kernel uses for `topics`:
 *   *        any run of characters other than '/'
 *   ?        one character other than '/'
 *   [abc]    one of the listed characters; ranges a-z; [^...] negates
 *   \c       the character c itself
 * The whole name must match. CAP topics are dotted ("job.batch.nightly"),
 * so '*' does cross dots: "job.*" matches "job.a.b". */
#ifndef REF_GLOB_H
#define REF_GLOB_H

#include <stddef.h>

/* 0 when pattern is well formed, otherwise -1 and a short reason in *why
 * (a static string). Check patterns once, when a policy is loaded. */
int ref_glob_check(const char *pattern, const char **why);

/* 1 when name matches pattern, 0 otherwise. pattern must have passed
 * ref_glob_check. */
int ref_glob_match(const char *pattern, const char *name);

/* The length of pattern's literal prefix: the characters before the first
 * metacharacter, when no escape comes first. Every matching name starts
 * with these bytes, which makes a cheap pre-filter. */
size_t ref_glob_literal_prefix(const char *pattern);

/* True when pattern has no metacharacters at all. */
int ref_glob_is_literal(const char *pattern);

#endif
