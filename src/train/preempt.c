/* preempt.c: the signal handlers and the per-step agreement of preempt.h. */
#define _GNU_SOURCE /* sigaction, SA_RESTART */
#include "train/preempt.h"
#include "core/core.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>

static const int sigs[3] = {SIGTERM, SIGINT, SIGUSR1};
static volatile sig_atomic_t got[3]; /* how many times each arrived */
static struct sigaction saved[3];
static int installed, agreed;

static void on_signal(int sig) {
    int first = got[0] + got[1] + got[2] == 0;
    for (int i = 0; i < 3; i++)
        if (sigs[i] == sig) got[i]++;
    if (first) return;
    static const char msg[] = "cetus: signal ignored: finishing the step and saving a checkpoint first "
                              "(SIGKILL ends the process at once)\n";
    ssize_t unused = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)unused;
}

void ct_preempt_install(void) {
    if (installed) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) sigaction(sigs[i], &sa, &saved[i]);
    installed = 1;
}

void ct_preempt_uninstall(void) {
    if (!installed) return;
    for (int i = 0; i < 3; i++) sigaction(sigs[i], &saved[i], NULL);
    installed = 0;
}

ct_status ct_preempt_agree(ct_world *w, int *sig) {
    float n[3];
    for (int i = 0; i < 3; i++) n[i] = got[i] > 0;
    if (ct_world_size(w) > 1) CT_TRY(ct_comm_allreduce(w, CT_AXIS_WORLD, n, 3));
    *sig = 0;
    for (int i = 2; i >= 0; i--)
        if (n[i] > 0) *sig = sigs[i];
    if (*sig) agreed = *sig;
    return CT_OK;
}

int ct_preempt_stopped(void) { return agreed; }

const char *ct_preempt_name(int sig) {
    return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : sig == SIGUSR1 ? "SIGUSR1" : "a signal";
}
