/*===- qnt/runtime.h - Run a compiled quant-mlir artifact ---------*- C -*-===//
 *
 * The C API of libqnt_runtime: open an artifact written by
 * `quant-compile --target cpu -o model.qnt`, create sessions (a KV cache of
 * a given context), feed tokens, read logits. The library links neither
 * LLVM nor MLIR. Every function that can fail returns NULL or a non-zero
 * status and sets a message that qnt_last_error() returns (per thread, as
 * dlerror); no C++ exception leaves it. docs/Artifact.md has the example
 * this API is made for.
 *
 * Opening a model sets glibc's malloc to keep freed memory (up to 512 MiB)
 * rather than return it to the kernel: the compiled code allocates its
 * temporaries on every call, and faulting them in again cost the JIT a
 * fifth of a model's time.
 *
 *===----------------------------------------------------------------------===*/

#ifndef QNT_RUNTIME_H
#define QNT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qnt_model qnt_model;
typedef struct qnt_session qnt_session;

typedef struct qnt_open_options {
  /* Threads of the kernels compiled to run on several (0: every core, or
   * OMP_NUM_THREADS); applies to images compiled with --cpu-threads=0. */
  int threads;
  /* "cpu" (the default when NULL). */
  const char *device;
  /* The CPU image to run: NULL for the first one this CPU can run
   * ("native", else "portable"), or a name from the manifest. */
  const char *image;
  /* Nonzero: skip checking the files' CRC-32C against the manifest (their
   * sizes are still checked). */
  int skip_checksums;
} qnt_open_options;

/* Sets the defaults: every core, the CPU, the best image, checksums on. */
void qnt_open_options_init(qnt_open_options *options);

/* The message of the last failure on this thread ("" if none). */
const char *qnt_last_error(void);

/* Opens the artifact directory `path`; options may be NULL (defaults). */
qnt_model *qnt_model_open(const char *path, const qnt_open_options *options);
void qnt_model_free(qnt_model *model);

int64_t qnt_model_vocab_size(const qnt_model *model);
int64_t qnt_model_context_length(const qnt_model *model);
/* The name of the CPU image in use ("native", "portable", ...). */
const char *qnt_model_image(const qnt_model *model);

/* Token ids of `text` (with BOS first if `bos`), using the artifact's
 * tokenizer. Writes at most `capacity` ids and stores the full count in
 * *count. Returns 0, or -1 without a tokenizer. */
int qnt_tokenize(const qnt_model *model, const char *text, int bos,
                 int32_t *tokens, int64_t capacity, int64_t *count);

/* The text of `token` following `previous` (a leading space is dropped
 * after BOS), NUL-terminated in `buffer` when it fits. Returns the text's
 * length, or -1 (no tokenizer, id out of range). */
int64_t qnt_token_text(const qnt_model *model, int32_t previous,
                       int32_t token, char *buffer, int64_t capacity);

/* A session with a KV cache of `context` positions (0: the model's). It
 * keeps its model alive: sessions and models may be freed in any order.
 * One thread at a time per session; sessions of one model may run on
 * different threads. */
qnt_session *qnt_session_create(qnt_model *model, int64_t context);
void qnt_session_free(qnt_session *session);

/* Runs `count` tokens at the session's next positions (the first call
 * starts at 0); their logits become qnt_session_logits(). Returns 0. */
int qnt_session_prefill(qnt_session *session, const int32_t *tokens,
                        int64_t count);
/* One token: qnt_session_prefill(session, &token, 1). */
int qnt_session_decode(qnt_session *session, int32_t token);
/* Logits of the last call: *rows rows of qnt_model_vocab_size() floats,
 * valid until the next call on the session. */
const float *qnt_session_logits(const qnt_session *session, int64_t *rows);
/* Positions filled so far; qnt_session_reset() empties the cache. */
int64_t qnt_session_position(const qnt_session *session);
void qnt_session_reset(qnt_session *session);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QNT_RUNTIME_H */
