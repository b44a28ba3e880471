/* generate.c - greedy generation with an artifact through the C API.
 *   quant-compile stories260K.bin --target cpu --tokenizer tok512.bin -o m.qnt
 *   generate m.qnt "Once upon a time" 32                                    */
#include <qnt/runtime.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s <artifact> <prompt> [tokens]\n", argv[0]);
    return 2;
  }
  int steps = argc > 3 ? atoi(argv[3]) : 32;
  qnt_model *model = qnt_model_open(argv[1], NULL);
  qnt_session *session = model ? qnt_session_create(model, 0) : NULL;
  int32_t prompt[512];
  int64_t count = 0, rows, vocab = qnt_model_vocab_size(model);
  if (!session || qnt_tokenize(model, argv[2], 1, prompt, 512, &count) ||
      count > 512 || qnt_session_prefill(session, prompt, count)) {
    fprintf(stderr, "error: %s\n", qnt_last_error());
    return 1;
  }
  int32_t previous = prompt[count - 1];
  fputs(argv[2], stdout);
  for (int step = 0; step < steps; ++step) {
    const float *logits = qnt_session_logits(session, &rows);
    const float *last = logits + (rows - 1) * vocab;
    int32_t next = 0;
    for (int32_t i = 1; i < vocab; ++i)
      if (last[i] > last[next])
        next = i;
    char piece[256];
    if (qnt_token_text(model, previous, next, piece, sizeof piece) >= 0)
      fputs(piece, stdout);
    if (qnt_session_decode(session, next)) {
      fprintf(stderr, "\nerror: %s\n", qnt_last_error());
      return 1;
    }
    previous = next;
  }
  putchar('\n');
  qnt_session_free(session);
  qnt_model_free(model);
  return 0;
}
