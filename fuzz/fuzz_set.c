/* Fuzz target: an override (capsim sim --set) applied to a YAML document
 * (cap_yaml_set). The input's first line is the PATH=VALUE assignment, the
 * rest the document. A refused assignment must say why, carry its origin
 * and leave the tree exactly as it was; an accepted one must leave a tree
 * whose mappings still have unique keys, whose nodes come from the text or
 * from the assignment, which as flow text (cap_yaml_flow) reads back and
 * writes the same text again, and applying the same assignment again must
 * give the same tree (an override is idempotent). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_error.h"
#include "cap_yaml.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "property failed: %s (line %d)\n", #c, __LINE__); __builtin_trap(); } } while (0)

/* FNV-1a over the tree: kinds, texts, quoting, origins and shapes. */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t fingerprint(const cap_yaml_node *n, uint64_t h, size_t *from_set)
{
    if (!n)
        return mix(h, "-", 1);
    CHECK(n->origin == 0 || n->origin == 1);
    *from_set += n->origin == 1;
    int head[4] = {(int)n->kind, n->quoted, n->origin, (int)n->n};
    h = mix(h, head, sizeof head);
    if (n->kind == CAP_YAML_SCALAR)
        return mix(h, n->text, n->len);
    for (size_t i = 0; i < n->n; i++) {
        if (n->kind == CAP_YAML_SEQ) {
            h = fingerprint(n->items[i], h, from_set);
            continue;
        }
        const cap_yaml_node *k = n->pairs[i].key;
        CHECK(k && k->kind == CAP_YAML_SCALAR && n->pairs[i].value);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(n->pairs[j].key->text, k->text) != 0);
        h = fingerprint(k, h, from_set);
        h = fingerprint(n->pairs[i].value, h, from_set);
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t alen = nl ? (size_t)(nl - data) : size;
    if (alen > 1024 || memchr(data, 0, alen))
        return 0;
    char assign[1025];
    memcpy(assign, data, alen);
    assign[alen] = '\0';
    const char *text = nl ? (const char *)nl + 1 : "";
    size_t tlen = nl ? size - alen - 1 : 0;

    cap_yaml_bounds b = cap_yaml_bounds_default();
    b.max_nodes = 4000;
    b.max_depth = 24;
    cap_yaml_doc *doc = NULL;
    cap_yaml_diag d;
    if (cap_yaml_parse(text, tlen, &b, &doc, &d) != 0)
        return 0;
    size_t set_nodes = 0;
    uint64_t before = fingerprint(cap_yaml_root(doc), 1469598103934665603ULL, &set_nodes);
    CHECK(set_nodes == 0);
    int rc = cap_yaml_set(doc, assign, &b, 1, &d);
    if (rc) {
        CHECK(rc == CAP_EYAML || rc == CAP_ENOMEM);
        CHECK(d.err == rc && d.origin == 1 && d.reason[0] != '\0');
        if (rc == CAP_EYAML)
            CHECK(fingerprint(cap_yaml_root(doc), 1469598103934665603ULL, &set_nodes) == before);
        cap_yaml_free(doc);
        return 0;
    }
    uint64_t once = fingerprint(cap_yaml_root(doc), 1469598103934665603ULL, &set_nodes);
    CHECK(set_nodes > 0);
    /* The tree as flow text reads back, and writes the same text again. */
    static char flow[1 << 16], again[1 << 16];
    if (cap_yaml_flow(cap_yaml_root(doc), flow, sizeof flow) == 0) {
        cap_yaml_doc *back = NULL;
        cap_yaml_bounds big = cap_yaml_bounds_default();
        CHECK(cap_yaml_parse(flow, strlen(flow), &big, &back, &d) == 0);
        CHECK(cap_yaml_flow(cap_yaml_root(back), again, sizeof again) == 0);
        CHECK(strcmp(flow, again) == 0);
        cap_yaml_free(back);
    }
    rc = cap_yaml_set(doc, assign, &b, 1, &d);
    /* Again: the path now exists; only the node bound may refuse it (the
     * first value's nodes still count towards the document's). */
    CHECK(rc == 0 || rc == CAP_ENOMEM || (rc == CAP_EYAML && strstr(d.reason, "nodes")));
    if (rc == 0) {
        set_nodes = 0;
        CHECK(fingerprint(cap_yaml_root(doc), 1469598103934665603ULL, &set_nodes) == once);
    }
    cap_yaml_free(doc);
    return 0;
}
