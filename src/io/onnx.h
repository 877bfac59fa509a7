/*
** ONNX export: a model's inference network as an ONNX graph (opset 13),
** hand-encoded as protobuf (src/io/onnx.c describes the wire format).
**
** The graph has one float input "input" (batch, C, H, W), PyTorch's NCHW,
** already normalized (the model's mean/std are in the model's
** metadata_props, not in the graph), and one output "logits" (batch, K).
** A BatchNormalization whose convolution feeds nothing else is folded into
** that convolution's weights and bias, as eval-mode inference does; the
** others (pre-activation nets) stay BatchNormalization nodes.
*/
#ifndef RN_IO_ONNX_H
#define RN_IO_ONNX_H

#include "resnet.h"

/* Writes m's eval-mode network to path (atomically, as rn_st_write does)
** for h x w inputs (0 x 0: the model's input size); batch > 0 fixes the batch size, 0 makes it the
** symbolic dimension "N". Fails (naming path) when h x w is too small for
** the network or on I/O and memory errors. */
rn_status rn_onnx_export(rn_model *m, const char *path, int batch, int h, int w, rn_error *err);

#endif
