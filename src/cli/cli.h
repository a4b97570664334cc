/* cli.h: the `cetus` subcommands. Each lives in its own file and returns a process exit code
 * (0 ok, 1 runtime failure, 2 usage or configuration error), and each accepts --help. */
#ifndef CT_CLI_H
#define CT_CLI_H

#include <stddef.h>

int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_upcycle(int argc, char **argv);
int cmd_delink(int argc, char **argv);

/* Shared by generate and eval: resolves a checkpoint argument (a checkpoint directory, a
 * run directory or a ckpt directory with a "latest" pointer) into out. */
int cli_resolve_checkpoint(const char *arg, char *out, size_t cap);

#endif
