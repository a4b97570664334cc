/* preempt.h: stopping a run cleanly on a signal (a scheduler's warning, Ctrl-C). SIGTERM,
 * SIGINT and SIGUSR1 only set a flag; at the end of each step the ranks agree (a sum over
 * the world of one count per signal: ~3 floats, measured in docs/robustness.md) so every
 * rank stops after the same step, saves a checkpoint and returns normally. A second signal
 * while stopping is ignored with a message: the save is not interrupted. */
#ifndef CT_PREEMPT_H
#define CT_PREEMPT_H

#include "parallel/comm.h"

/* Installs the handlers (SA_RESTART); ct_preempt_uninstall puts the previous ones back. */
void ct_preempt_install(void);
void ct_preempt_uninstall(void);
/* Every rank learns whether any got a signal; *sig = the signal (SIGTERM before SIGINT
 * before SIGUSR1 when several arrived), 0 to go on. Collective over the world. */
ct_status ct_preempt_agree(ct_world *w, int *sig);
/* The signal agreed on so far (0: none): a later phase of the run does not start. */
int ct_preempt_stopped(void);
/* "SIGTERM", "SIGINT", "SIGUSR1". */
const char *ct_preempt_name(int sig);

#endif
