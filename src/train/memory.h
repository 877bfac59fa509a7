/*
** The memory a training run will need, planned before it starts, against
** the memory the process can have: a batch, input size and architecture
** that would not fit are refused with a message instead of the run being
** killed by the kernel's out-of-memory killer minutes later (malloc on
** Linux succeeds far beyond what can be touched).
**
** Needed: the activation arena of a training step (rn_model_plan_size),
** the optimizer state (one or two buffers the size of the parameters) and
** whatever the caller adds (the data loaders' batch buffers). Parameters and
** gradients are already allocated when the check runs, so they are in the
** "used" part of the system's figures.
**
** Available: the smallest of MemAvailable (/proc/meminfo), the cgroup's
** limit minus its usage (v2 memory.max / memory.current, v1
** limit_in_bytes / usage_in_bytes) and RLIMIT_AS minus the address space
** already mapped. Figures that cannot be read do not limit.
*/
#ifndef RN_MEMORY_H
#define RN_MEMORY_H

#include <stddef.h>

#include "model/model.h"

/* Bytes this process can still allocate and touch (SIZE_MAX: no limit
** found); *source names the figure that limits ("MemAvailable", ...). */
size_t rn_memory_available(const char **source);

/* Fails with RN_ERR_NOMEM and a message giving the parts of the plan when
** training m on batches of n at h x w, with optim_states buffers the size of
** the parameters and extra bytes besides, needs more than is available. */
rn_status rn_train_memory_check(rn_model *m, int n, int h, int w, int optim_states, size_t extra, rn_error *err);

#endif
