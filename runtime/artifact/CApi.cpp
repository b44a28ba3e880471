//===- CApi.cpp - The C API of libqnt_runtime -----------------------------===//
//
// qnt/runtime.h over ArtifactModel.h: every entry point catches what the
// C++ core reports and turns it into a status and qnt_last_error().
//
//===----------------------------------------------------------------------===//

#include "qnt/runtime.h"
#include "ArtifactModel.h"

#include <cstring>

using namespace qnt;

// A session shares its model: freeing the model first leaves the session
// usable, and the model goes with the last of them.
struct qnt_model {
  std::shared_ptr<rt::Model> model;
};

struct qnt_session {
  std::shared_ptr<rt::Model> model; // declared first: outlives `session`
  std::unique_ptr<rt::Session> session;
};

static thread_local std::string lastError;

static void setError(std::string message) { lastError = std::move(message); }

/// Runs `body`, turning any exception (out of memory in a string or vector)
/// into `failure` and qnt_last_error(): nothing may unwind into C.
template <typename Result, typename Body>
static Result guarded(const char *function, Result failure, Body &&body) {
  try {
    return body();
  } catch (const std::exception &e) {
    setError(std::string(function) + ": " + e.what());
  } catch (...) {
    setError(std::string(function) + ": unexpected error");
  }
  return failure;
}

#define QNT_API extern "C" __attribute__((visibility("default")))

QNT_API void qnt_open_options_init(qnt_open_options *options) {
  if (!options)
    return;
  options->threads = 0;
  options->device = nullptr;
  options->image = nullptr;
  options->skip_checksums = 0;
}

QNT_API const char *qnt_last_error(void) { return lastError.c_str(); }

static qnt_model *openModel(const char *path,
                            const qnt_open_options *options) {
  if (!path) {
    setError("qnt_model_open: no path");
    return nullptr;
  }
  rt::OpenOptions open;
  if (options) {
    if (options->threads < 0) {
      setError("qnt_model_open: threads must be >= 0");
      return nullptr;
    }
    open.threads = options->threads;
    if (options->device)
      open.device = options->device;
    if (options->image)
      open.image = options->image;
    open.verifyChecksums = !options->skip_checksums;
  }
  std::string error;
  std::unique_ptr<rt::Model> model = rt::Model::open(path, open, &error);
  if (!model) {
    setError(error);
    return nullptr;
  }
  return new qnt_model{std::move(model)};
}

QNT_API qnt_model *qnt_model_open(const char *path,
                                  const qnt_open_options *options) {
  return guarded("qnt_model_open", static_cast<qnt_model *>(nullptr),
                 [&] { return openModel(path, options); });
}

QNT_API void qnt_model_free(qnt_model *model) { delete model; }

QNT_API int64_t qnt_model_vocab_size(const qnt_model *model) {
  return model ? model->model->config().vocabSize : 0;
}

QNT_API int64_t qnt_model_context_length(const qnt_model *model) {
  return model ? model->model->config().maxSeqLen : 0;
}

QNT_API const char *qnt_model_image(const qnt_model *model) {
  return model ? model->model->imageName().c_str() : "";
}

QNT_API int qnt_tokenize(const qnt_model *model, const char *text, int bos,
                         int32_t *tokens, int64_t capacity, int64_t *count) {
  if (!model || !text || !count || capacity < 0 || (capacity && !tokens)) {
    setError("qnt_tokenize: invalid arguments");
    return -1;
  }
  const io::Tokenizer *tokenizer = model->model->tokenizer();
  if (!tokenizer) {
    setError("qnt_tokenize: the artifact has no tokenizer");
    return -1;
  }
  return guarded("qnt_tokenize", -1, [&] {
    std::vector<int32_t> ids = tokenizer->encode(text, bos != 0, false);
    *count = int64_t(ids.size());
    std::memcpy(tokens, ids.data(),
                sizeof(int32_t) * std::min<size_t>(ids.size(), capacity));
    return 0;
  });
}

QNT_API int64_t qnt_token_text(const qnt_model *model, int32_t previous,
                               int32_t token, char *buffer,
                               int64_t capacity) {
  if (!model || capacity < 0 || (capacity && !buffer)) {
    setError("qnt_token_text: invalid arguments");
    return -1;
  }
  const io::Tokenizer *tokenizer = model->model->tokenizer();
  if (!tokenizer) {
    setError("qnt_token_text: the artifact has no tokenizer");
    return -1;
  }
  if (token < 0 || token >= tokenizer->vocabSize()) {
    setError("qnt_token_text: token id " + std::to_string(token) +
             " is outside the vocabulary");
    return -1;
  }
  return guarded("qnt_token_text", int64_t(-1), [&] {
    std::string text = tokenizer->decode(previous, token);
    if (int64_t(text.size()) < capacity) {
      std::memcpy(buffer, text.data(), text.size());
      buffer[text.size()] = '\0';
    }
    return int64_t(text.size());
  });
}

QNT_API qnt_session *qnt_session_create(qnt_model *model, int64_t context) {
  if (!model) {
    setError("qnt_session_create: no model");
    return nullptr;
  }
  return guarded("qnt_session_create", static_cast<qnt_session *>(nullptr),
                 [&]() -> qnt_session * {
                   std::string error;
                   std::unique_ptr<rt::Session> session =
                       rt::Session::create(*model->model, context, &error);
                   if (!session) {
                     setError(error);
                     return nullptr;
                   }
                   return new qnt_session{model->model, std::move(session)};
                 });
}

QNT_API void qnt_session_free(qnt_session *session) { delete session; }

QNT_API int qnt_session_prefill(qnt_session *session, const int32_t *tokens,
                                int64_t count) {
  if (!session || (count > 0 && !tokens)) {
    setError("qnt_session_prefill: invalid arguments");
    return -1;
  }
  return guarded("qnt_session_prefill", -1, [&] {
    std::string error;
    if (!session->session->prefill(tokens, count, &error)) {
      setError(error);
      return -1;
    }
    return 0;
  });
}

QNT_API int qnt_session_decode(qnt_session *session, int32_t token) {
  return qnt_session_prefill(session, &token, 1);
}

QNT_API const float *qnt_session_logits(const qnt_session *session,
                                        int64_t *rows) {
  if (!session || session->session->logits().shape().empty()) {
    if (rows)
      *rows = 0;
    setError("qnt_session_logits: no logits yet");
    return nullptr;
  }
  const rt::Buffer &logits = session->session->logits();
  if (rows)
    *rows = logits.shape()[0];
  return logits.f32();
}

QNT_API int64_t qnt_session_position(const qnt_session *session) {
  return session ? session->session->position() : 0;
}

QNT_API void qnt_session_reset(qnt_session *session) {
  if (session)
    session->session->reset();
}
