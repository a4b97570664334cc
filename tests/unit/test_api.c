/* test_api.c: the public API alone (include/cetus.h), as a library user calls it: a model
 * created, run and read by name; a short training run from the few-calls API; its
 * checkpoint loaded back; the tokenizer; seeded generation. Only the corpus fixture
 * reaches inside (it prepares token shards as `cetus prepare` does). */
#include "cetus.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define TMPDIR_TEMPLATE "/tmp/cetus_api_XXXXXX"
#include "tmpdir.h"

static const ct_model_config tiny = {.n_layer = 2, .d_model = 32, .n_head = 2, .seq_len = 16, .vocab_size = 64};

Test(api, model_params_by_name) {
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &tiny, 7), CT_OK, "%s", ct_last_error());
    size_t total = 0;
    for (size_t i = 0; i < ct_model_num_tensors(m); i++) {
        ct_param p;
        cr_assert_eq(ct_model_param(m, i, &p), CT_OK);
        size_t numel = 1;
        for (int d = 0; d < p.ndim; d++) numel *= (size_t)p.shape[d];
        cr_assert_eq(numel, p.numel, "%s", p.name);
        cr_assert(p.data >= ct_model_params(m) &&
                  p.data + p.numel <= ct_model_params(m) + ct_model_num_params(m));
        cr_assert_null(p.grad, "no gradients before the first backward");
        total += p.numel;
    }
    cr_assert_eq(total, ct_model_num_params(m), "the table covers the buffer");
    ct_param wte;
    cr_assert_eq(ct_model_find_param(m, "wte.weight", &wte), CT_OK);
    cr_assert_eq(wte.ndim, 2);
    cr_assert_eq(wte.shape[0], 64);
    cr_assert_eq(wte.shape[1], 32);
    ct_param none;
    cr_assert_eq(ct_model_find_param(m, "h.9.mlp.c_fc.weight", &none), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "h.9.mlp.c_fc.weight"), "%s", ct_last_error());
    cr_assert_eq(ct_model_param(m, ct_model_num_tensors(m), &none), CT_EINVAL);

    int32_t tokens[2 * 8], targets[2 * 8];
    for (int i = 0; i < 16; i++) {
        tokens[i] = (i * 5) % 64;
        targets[i] = (i * 5 + 3) % 64;
    }
    float loss;
    cr_assert_eq(ct_model_forward(m, tokens, targets, NULL, 2, 8, &loss), CT_OK);
    cr_assert(fabsf(loss - logf(64.0f)) < 0.5f, "loss at init %f near ln(64)", loss);
    cr_assert_eq(ct_model_backward(m, 1.0f), CT_OK);
    cr_assert_eq(ct_model_find_param(m, "wte.weight", &wte), CT_OK);
    cr_assert_not_null(wte.grad);
    double g = 0;
    for (size_t i = 0; i < wte.numel; i++) g += fabs(wte.grad[i]);
    cr_assert(g > 0, "the embedding has a gradient");
    ct_model_free(m);
}

static void write_corpus(const char *dir) {
    char text[512], path[600];
    snprintf(text, sizeof text, "%s/text", dir);
    cr_assert_eq(mkdir(text, 0755), 0);
    for (int d = 0; d < 8; d++) {
        snprintf(path, sizeof path, "%s/doc%d.txt", text, d);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        for (int line = 0; line < 40; line++)
            fprintf(f, "def function_%d(x):\n    return x * %d + %d  # document %d\n", line, d + 1, line, d);
        fclose(f);
    }
    ct_tokenizer *tok;
    cr_assert_eq(ct_tokenizer_load_default(&tok), CT_OK, "%s", ct_last_error());
    const char *inputs[] = {text};
    char out[600];
    snprintf(out, sizeof out, "%s/data", dir);
    ct_prepare_opts o = {inputs, 1, out, 0.25, 100000, 0, 0, CT_DOCS_AUTO, NULL, 0, 0};
    cr_assert_eq(ct_prepare(&o, &tok, 1, NULL), CT_OK, "%s", ct_last_error());
    ct_tokenizer_free(tok);
}

static ct_status set(ct_run *r, const char *fmt, const char *arg) {
    char kv[700];
    snprintf(kv, sizeof kv, fmt, arg);
    return ct_run_set(r, kv);
}

static void collect(int32_t id, void *ctx) {
    int32_t *out = ctx;
    out[++out[0]] = id;
}

Test(api, train_load_generate, .init = make_tmpdir, .fini = cleanup) {
    write_corpus(tmpdir);
    ct_run *run;
    cr_assert_eq(ct_run_create(&run), CT_OK);
    const char *keys[] = {"model.n_layer=1",       "model.d_model=32",     "model.n_head=2",
                          "model.seq_len=16",      "train.batch_size=2",   "train.steps=3",
                          "train.eval_interval=0", "train.eval_batches=1", "train.sample_tokens=0",
                          "train.warmup_steps=1",  "runtime.threads=1"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        cr_assert_eq(ct_run_set(run, keys[i]), CT_OK, "%s", keys[i]);
    cr_assert_eq(ct_run_set(run, "model.no_such_key=1"), CT_EINVAL, "an unknown key is refused when given");
    cr_assert(strstr(ct_last_error(), "model.no_such_key"), "%s", ct_last_error());
    cr_assert_eq(set(run, "data.dir=%s/data", tmpdir), CT_OK);
    cr_assert_eq(set(run, "run.dir=%s/run", tmpdir), CT_OK);
    cr_assert_eq(ct_run_train(run), CT_OK, "%s", ct_last_error());
    ct_run_free(run);

    char dir[1100], run_dir[600];
    snprintf(run_dir, sizeof run_dir, "%s/run", tmpdir);
    cr_assert_eq(ct_checkpoint_resolve(run_dir, dir, sizeof dir), CT_OK, "%s", ct_last_error());
    cr_assert(strstr(dir, "step_00000003"), "the latest checkpoint is step 3: %s", dir);
    cr_assert_eq(ct_checkpoint_resolve(tmpdir, dir, sizeof dir), CT_EIO, "the scratch dir is no checkpoint");
    cr_assert(strstr(ct_last_error(), tmpdir), "%s", ct_last_error());

    ct_model *m;
    cr_assert_eq(ct_model_load(&m, run_dir), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_model_get_config(m)->d_model, 32);
    cr_assert_eq(ct_model_get_config(m)->vocab_size, 50257);

    ct_tokenizer *tok;
    cr_assert_eq(ct_tokenizer_load_default(&tok), CT_OK);
    cr_assert_eq(ct_tokenizer_vocab_size(tok), 50257);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    const char *prompt = "def function_3(x):";
    cr_assert_eq(ct_tokenizer_encode(tok, prompt, strlen(prompt), &ids, &n, &cap), CT_OK);
    cr_assert(n > 3);
    char *back;
    size_t len;
    cr_assert_eq(ct_tokenizer_decode(tok, ids, n, &back, &len), CT_OK);
    cr_assert_str_eq(back, prompt, "decode(encode(text)) is the text");
    ct_tokenizer_free_buffer(back);

    int32_t a[1 + 8] = {0}, b[1 + 8] = {0}, c[1 + 8] = {0};
    cr_assert_eq(ct_generate(m, ids, (int)n, 8, 1.0f, 0, 42, collect, a), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_generate(m, ids, (int)n, 8, 1.0f, 0, 42, collect, b), CT_OK);
    cr_assert_eq(a[0], 8);
    cr_assert_arr_eq(a, b, sizeof a, "the same seed draws the same tokens");
    cr_assert_eq(ct_generate(m, ids, (int)n, 8, 0.0f, 0, 1, collect, c), CT_OK);
    for (int i = 1; i <= 8; i++) cr_assert(c[i] >= 0 && c[i] < 50257);
    ct_tokenizer_free_buffer(ids);
    ct_tokenizer_free(tok);
    ct_model_free(m);
}
