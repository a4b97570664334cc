/* cli.h: the `cetus` subcommands. Each lives in its own file and returns a process exit code
 * (0 ok, 1 runtime failure, 2 usage/config error). */
#ifndef CT_CLI_H
#define CT_CLI_H

int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_prepare(int argc, char **argv);

#endif
