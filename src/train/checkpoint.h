/*
** Checkpoints of a training run in a directory:
**   last.safetensors          the model (torchvision names: PyTorch loads it)
**   last.state.safetensors    optimizer state, position, smoothed loss, the
**                             command line, and a CRC-32 of the weights it
**                             belongs with
**   last.state.prev.safetensors   the previous state
**
** Each file is replaced atomically (temp file, fsync, rename, directory
** fsync). They are written in the order state -> prev, new state, model, so
** that after a crash at any point the model matches either the state or the
** previous state, and loading picks the one whose CRC matches the weights.
**
** A save cut short between the two writes leaves a state that does not
** match the model, and the matching state in prev. The next save must then
** keep prev (moving the stale state over it and being cut short again
** would leave no state for the model: tests/faults.sh does exactly that),
** so the model file carries the CRC too and the state is moved to prev only
** when it is not known to be stale. Weights that are not finite are never
** written, and temp files that a killed save left behind are removed.
*/
#ifndef RN_CHECKPOINT_H
#define RN_CHECKPOINT_H

#include "model/model.h"
#include "train/optim.h"
#include "train/trainer.h"

/* Writes the model, optimizer state and position to dir. */
rn_status rn_ckpt_save(const char *dir, const rn_model *m, rn_optim *o, const rn_train_state *s,
                       const char *args_json, rn_error *err);
/* Loads the model (already created with the same architecture), the
** optimizer state and the position from dir. */
rn_status rn_ckpt_load(const char *dir, rn_model *m, rn_optim *o, rn_train_state *s, rn_error *err);
/* CRC-32 of a model's weights, buffers and counters as they sit in memory. */
uint32_t rn_model_crc(const rn_model *m);

#endif
