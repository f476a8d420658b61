/* fuzz_cfg.c: libFuzzer target for the config parser (util/cfg.c), the model
 * config reader (train/netcfg.c, with every layer type's parse) and, when a
 * config reads and its model is small (fuzz_util.h), model building at batch
 * 2 on one thread. Build and run with scripts/fuzz cfg SECONDS. */
#include <stdint.h>
#include <stdlib.h>

#include "cfg.h"
#include "layer.h"
#include "netcfg.h"

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) return 0;
    qat_cfg c;
    if (qat_cfg_parse_text(&c, "fuzz.cfg", (const char *)data, size) != QAT_OK) return 0;
    qat_net_cfg net;
    qat_layer *layers;
    int n;
    if (qat_netcfg_read(&c, &net, &layers, &n) == QAT_OK) {
        if (fuzz_model_small(net.c, net.h, net.w, layers, n)) {
            qat_model m;
            if (qat_model_build(&m, layers, n, net.c, net.h, net.w, 2, 1, net.seed) == QAT_OK)
                qat_model_free(&m);
            /* the model owns the layers from here, built or not */
        } else {
            free(layers);
        }
    }
    qat_cfg_free(&c);
    return 0;
}
