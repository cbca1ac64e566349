"""deepcast.features: pure data -> arrays (long-frame schema, windows, scalers).

Imports no orchestration or tracking framework; TensorFlow only for tf.data.
"""
