//! A step's gradients as one flat tensor and back, parameters in the model's own order (the
//! same in every process, unlike burn's random `ParamId`s).

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

type Flat<B> = Tensor<<B as AutodiffBackend>::InnerBackend, 1>;

/// Every gradient in `grads`, flattened and concatenated in `model`'s parameter order, then
/// `extra` (`None` when there are neither).
pub(crate) fn flatten_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &mut GradientsParams,
    extra: Flat<B>,
) -> Flat<B> {
    let mut visitor = Collect::<B> {
        grads,
        pieces: Vec::new(),
    };
    model.visit(&mut visitor);
    let mut pieces = visitor.pieces;
    pieces.push(extra);
    Tensor::cat(pieces, 0)
}

/// The inverse of [`flatten_grads`] for the same model and the same set of gradients: the
/// gradients registered again under `model`'s ids, and what followed them (`extra`).
pub(crate) fn unflatten_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    trained: &[ParamId],
    flat: Flat<B>,
) -> (GradientsParams, Flat<B>) {
    let mut visitor = Place::<B> {
        trained,
        flat: &flat,
        offset: 0,
        grads: GradientsParams::new(),
    };
    model.visit(&mut visitor);
    let (offset, total) = (visitor.offset, flat.dims()[0]);
    (visitor.grads, flat.slice(offset..total))
}

/// The ids, in model order, of the parameters `grads` has a gradient for.
pub(crate) fn trained_ids<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &GradientsParams,
) -> Vec<ParamId> {
    struct Ids<'a> {
        grads: &'a GradientsParams,
        ids: Vec<ParamId>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Ids<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if self.grads.get::<B::InnerBackend, D>(param.id).is_some() {
                self.ids.push(param.id);
            }
        }
    }
    let mut visitor = Ids {
        grads,
        ids: Vec::new(),
    };
    model.visit(&mut visitor);
    visitor.ids
}

struct Collect<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    pieces: Vec<Flat<B>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let len = grad.shape().num_elements();
            self.pieces.push(grad.reshape([len]));
        }
    }
}

struct Place<'a, B: AutodiffBackend> {
    trained: &'a [ParamId],
    flat: &'a Flat<B>,
    offset: usize,
    grads: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Place<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !self.trained.contains(&param.id) {
            return;
        }
        let shape = param.val().shape();
        let len = shape.num_elements();
        let piece = self.flat.clone().slice(self.offset..self.offset + len);
        self.offset += len;
        self.grads
            .register::<B::InnerBackend, D>(param.id, piece.reshape(shape));
    }
}

/// The sum of every parameter of `model`, in its own order: equal on every rank when their
/// weights are (the same values, summed in the same order), as `Peer::agree` checks.
pub(crate) fn weights_checksum<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M) -> f32 {
    struct Sum(f64);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Sum {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let sum: f64 = burn::tensor::ElementConversion::elem(param.val().sum().into_scalar());
            self.0 += sum;
        }
    }
    let mut visitor = Sum(0.0);
    model.visit(&mut visitor);
    visitor.0 as f32
}
