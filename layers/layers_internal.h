/* layers_internal.h: helpers shared by the layer files (not public API). */
#ifndef QAT_LAYERS_INTERNAL_H
#define QAT_LAYERS_INTERNAL_H

#include "layer.h"

/* a key the section must have: error "PATH:LINE: [sec] needs 'key' (...)" */
qat_status qat_layer_need(qat_cfg *c, qat_cfg_section *s, const char *key, const char *hint);
/* "init" key with the model-wide default already in l->init */
qat_status qat_layer_parse_init(qat_layer *l, qat_cfg *c, qat_cfg_section *s);
/* a parameter named "<layer>.<what>" */
qat_tensor *qat_layer_param(qat_model *m, qat_layer *l, const char *what, int ndim, const int *shape,
                            int flags);
/* the weight tensor: a float parameter, or the float view of weights a
 * quantizer keeps as integer states (DST) */
qat_tensor *qat_layer_weight(qat_model *m, qat_layer *l, int ndim, const int *shape);
qat_tensor *qat_layer_quant_input(qat_model *m, qat_layer *l, qat_tensor *in);
qat_tensor *qat_layer_quant_weight(qat_model *m, qat_layer *l);
qat_tensor *qat_layer_quant_output(qat_model *m, qat_layer *l, qat_tensor *out);
/* a conv whose weight and input quantizers both give exactly +-1: its
 * forward runs on the runtime's XOR-popcount kernels (binconv.c) */
int qat_layer_binary_forward_ok(const qat_qspec *w, const qat_qspec *a);
void qat_layer_binary_forward(qat_tensor *conv);
/* a float-weight conv on the image: sums exact in double, rounded once (exactconv.c) */
void qat_layer_exact_forward(qat_tensor *conv);
/* the build error for a layer, wrapping the op's message */
qat_status qat_layer_fail(const qat_layer *l);

extern const qat_layer_type qat_layer_conv2d, qat_layer_linear, qat_layer_batchnorm, qat_layer_maxpool,
    qat_layer_avgpool, qat_layer_gap, qat_layer_relu, qat_layer_hardtanh, qat_layer_dropout,
    qat_layer_flatten, qat_layer_shortcut, qat_layer_route;

#endif
