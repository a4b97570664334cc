/* tool_ckpt_loss.c: the loss of a checkpoint's model on given tokens, through the public API
 * (ct_model_load, ct_model_forward), for checks against an independent reference
 * (tests/tools/hf_gpt2.py in t_hf_import).
 *
 * Usage: tool_ckpt_loss PATH B T [LOGITS] < TOKENS
 *   PATH    a checkpoint or run directory
 *   TOKENS  B rows of T + 1 whitespace-separated token ids: row b's first T are the input,
 *           its last T the targets
 *   LOGITS  where to write the logits: float32 [B, T, V], little endian, nothing else
 * Prints "loss X" (X with 9 significant digits); exit 1 on any error. */
#include "cetus.h"
#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what) {
    fprintf(stderr, "tool_ckpt_loss: %s: %s\n", what, ct_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: tool_ckpt_loss PATH B T [LOGITS] < TOKENS\n");
        return 2;
    }
    int B = atoi(argv[2]), T = atoi(argv[3]);
    if (B < 1 || T < 1 || B > 1024 || T > 65536) {
        fprintf(stderr, "tool_ckpt_loss: bad B or T\n");
        return 2;
    }
    ct_runtime_init(1, 0);
    int32_t *tokens = calloc((size_t)B * T, sizeof *tokens), *targets = calloc((size_t)B * T, sizeof *targets);
    if (!tokens || !targets) return 1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= T; t++) {
            int id;
            if (scanf("%d", &id) != 1) {
                fprintf(stderr, "tool_ckpt_loss: expected %d rows of %d ids\n", B, T + 1);
                return 1;
            }
            if (t < T) tokens[b * T + t] = id;
            if (t > 0) targets[b * T + t - 1] = id;
        }
    ct_model *m;
    float loss;
    if (ct_model_load(&m, argv[1]) != CT_OK) return fail("loading");
    if (ct_model_forward(m, tokens, targets, NULL, B, T, &loss) != CT_OK) return fail("forward");
    printf("loss %.9g\n", loss);
    size_t n = (size_t)B * T * (size_t)ct_model_get_config(m)->vocab_size;
    FILE *f = argc == 5 ? fopen(argv[4], "wb") : NULL;
    if (argc == 5 && (!f || fwrite(ct_model_logits(m), sizeof(float), n, f) != n || fclose(f) != 0)) {
        fprintf(stderr, "tool_ckpt_loss: cannot write %s\n", argv[4]);
        return 1;
    }
    ct_model_free(m);
    free(tokens);
    free(targets);
    return 0;
}
