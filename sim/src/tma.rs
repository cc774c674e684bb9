//! Tensor maps (`cuTensorMapEncodeTiled`): validation and the simulator's own 128-byte encoding.
