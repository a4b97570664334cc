/* main.c: the `cetus` command: dispatches to the subcommands. */
#include "cli/cli.h"
#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", cmd_train, "train a model (no arguments: the default model on the bundled corpus)"},
    {"generate", cmd_generate, "sample text from a checkpoint"},
    {"eval", cmd_eval, "validation loss and perplexity of a checkpoint"},
    {"prepare", cmd_prepare,
     "tokenize text files into checksummed token shards (--scenes: captioned image scenes)"},
    {"upcycle", cmd_upcycle, "turn a dense checkpoint into an MoE one (experts copy the MLP)"},
    {"delink", cmd_delink, "turn a shared-weight (pseudo) checkpoint into the real model's (Pseudo-to-Real)"},
    {"import", cmd_import, "read a Hugging Face GPT-2 directory into a run directory to train on"},
    {"tokenize", cmd_tokenize, "print the GPT-2 token ids of a file (or decode ids)"},
    {"plan", cmd_plan,
     "predict a layout's memory per rank and step time, search the layouts that fit (--calibrate: measure "
     "this machine)"},
    {"peak", cmd_peak, "the machine's fp32 and bf16 FLOP peak, measured (what MFU is against)"},
    {"verify", cmd_verify,
     "check checkpoints (one, or a run's every one) or a data directory without loading a model"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
    fprintf(out, "usage: cetus <command> [options]   (cetus <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "cetus: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
