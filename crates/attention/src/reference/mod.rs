//! The composed burn code of every hot operation: the reference that the fused kernels are
//! tested against, and what every backend without fused kernels runs (CUDA included). It sits
//! below `kernels` (whose `Kernels` trait has these as its default bodies) and imports only
//! the shared types, so the public forms above can use both.

pub(crate) mod linear;
pub(crate) mod lm_head;
pub(crate) mod maps;
pub(crate) mod softmax;
pub(crate) mod window;
