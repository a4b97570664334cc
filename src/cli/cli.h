/* cli.h: the `cetus` subcommands. Each lives in its own file and returns a process exit code
 * (0 ok, 1 runtime failure, 2 usage or configuration error), and each accepts --help. The
 * subcommands use include/cetus.h and train/commands.h (the train layer's offer to them),
 * and the data and model headers for files and captions. */
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
int cmd_import(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_peak(int argc, char **argv);

#endif
