"""Run a tiny training under a tf.distribute strategy in a fresh process (used by test_distribute.py).

Usage: python distributed_worker.py mirrored|multiworker TRAIN_CSV VAL_CSV RUN_DIR OUT.npz
``mirrored`` splits the CPU into two logical devices first; ``multiworker`` reads TF_CONFIG. The final weights
(and for ``mirrored`` the largest difference between the replicas' copies) are written to OUT.npz.
"""

import sys

import numpy as np
import tensorflow as tf


def main() -> None:
    mode, train_csv, val_csv, run_dir, out = sys.argv[1:]
    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras

    keras.config.disable_traceback_filtering()
    from conftest import tiny_train_config

    from fetal_keras.training.train import train

    config = tiny_train_config(train_csv, val_csv, run_dir, steps_per_epoch=3, batch_size=4, seed=3, strategy=mode)
    result = train(config, verbose=0)
    replicas, spread = 1, 0.0
    for weight in result.model.weights:
        copies = getattr(weight.value, "values", None)
        if copies:
            replicas = max(replicas, len(copies))
            difference = max(float(np.abs(c.numpy() - copies[0].numpy()).max()) for c in copies)
            if difference:
                print("replicas differ:", weight.path, difference, file=sys.stderr)
            spread = max(spread, difference)
    in_sync = result.model.distribute_strategy.num_replicas_in_sync
    np.savez(out, *[w.numpy() for w in result.model.weights], replicas=replicas, spread=spread, in_sync=in_sync)


if __name__ == "__main__":
    main()
