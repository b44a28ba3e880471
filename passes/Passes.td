//===- Passes.td - qnt pass definitions --------------------*- tablegen -*-===//
//
// Every quant-mlir pass: PTQ algorithms (ptq/), IR transforms (transforms/)
// and lowerings (lowering/). One .cpp per pass, named after the pass.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_TD
#define QNT_PASSES_TD

include "mlir/Pass/PassBase.td"

//===----------------------------------------------------------------------===//
// PTQ algorithms
//===----------------------------------------------------------------------===//

// The options of every weight method: grid, layer selection, overrides,
// statistics, output and report (passes/ptq/WeightMethodDriver.h).
defvar QntWeightMethodOptions = [
  Option<"format", "format", "std::string", /*default=*/"\"int\"",
         "Grid: int, e2m1, e3m2, e2m3, e4m3, e5m2, e1m1 or e2m0">,
  Option<"bits", "bits", "int64_t", /*default=*/"4",
         "Bits per weight of the int grid (2..8); implied by minifloat formats">,
  Option<"granularity", "granularity", "std::string",
         /*default=*/"\"per-group\"",
         "Scale granularity: per-tensor, per-channel or per-group">,
  Option<"groupSize", "group-size", "int64_t", /*default=*/"128",
         "Inputs per scale group (per-group granularity)">,
  Option<"symmetric", "symmetric", "bool", /*default=*/"false",
         "Symmetric int grid (no zero point)">,
  Option<"scaleType", "scale-type", "::qnt::numerics::ScaleStorage",
         /*default=*/"::qnt::numerics::ScaleStorage::F32",
         "Storage of the scales; the codes are chosen for the stored values",
         [{::llvm::cl::values(
           clEnumValN(::qnt::numerics::ScaleStorage::F32, "f32", "float"),
           clEnumValN(::qnt::numerics::ScaleStorage::F16, "f16",
                      "half (as llama.cpp's formats store them)"))}]>,
  Option<"indivisibleGroups", "indivisible-groups", "std::string",
         /*default=*/"\"ragged\"",
         "A weight whose K the group size does not divide: ragged (a "
         "shorter last group), per-channel, or error">,
  Option<"output", "output", "std::string", /*default=*/"\"\"",
         "Safetensors file receiving quantized qnt.param weights">,
  Option<"layers", "layers", "std::string", /*default=*/"\"\"",
         "Regex over layer names selecting the weights to quantize "
         "(default: all; on an imported model the decoder blocks' linears)">,
  Option<"quantizeHead", "quantize-head", "bool", /*default=*/"false",
         "Also quantize an imported model's classifier">,
  ListOption<"overrides", "overrides", "std::string",
             "Per-layer settings: REGEX:key=value[:key=value...] with keys "
             "bits, group-size, granularity, symmetric, format, scale-type, "
             "or a method option; later overrides win">,
  Option<"stats", "stats", "std::string", /*default=*/"\"\"",
         "Statistics file (qnt.calibration/1) from quant-calibrate">,
  Option<"report", "report", "std::string", /*default=*/"\"\"",
         "Write the per-layer report as JSON to this file">,
  Option<"verbose", "verbose", "bool", /*default=*/"false",
         "Show progress and print the per-layer report on stderr">,
  Option<"lorcRank", "lorc-rank", "int64_t", /*default=*/"0",
         "LoRC: rank of the low-rank compensation of each weight's "
         "quantization error, a qnt.lowrank_add after the matmul (0: none)">,
  Option<"lorcFactors", "lorc-factors", "::qnt::numerics::FactorFormat",
         /*default=*/"::qnt::numerics::FactorFormat::Int8",
         "LoRC: storage of the factors",
         [{::llvm::cl::values(
           clEnumValN(::qnt::numerics::FactorFormat::F32, "f32", "float"),
           clEnumValN(::qnt::numerics::FactorFormat::F16, "f16", "half"),
           clEnumValN(::qnt::numerics::FactorFormat::Int8, "int8",
                      "8-bit codes, one symmetric scale per factor row"))}]>,
  Option<"actBits", "act-bits", "int64_t", /*default=*/"0",
         "Activations: quantize each quantized layer's input to this many "
         "bits (symmetric, scale from the input's absmax at run time, times "
         "the clip ratio qnt-pdquant learns), a qnt.fake_quant before the "
         "matmul (0: float inputs)">,
  Option<"actGranularity", "act-granularity",
         "::mlir::qnt::ActivationGranularity",
         /*default=*/"::mlir::qnt::ActivationGranularity::per_token",
         "Activations: one scale per token or per tensor",
         [{::llvm::cl::values(
           clEnumValN(::mlir::qnt::ActivationGranularity::per_token,
                      "per-token", "one scale per row"),
           clEnumValN(::mlir::qnt::ActivationGranularity::per_tensor,
                      "per-tensor", "one scale per call"))}]>,
  Option<"biasCorrection", "bias-correction", "bool", /*default=*/"false",
         "Bias correction: add E[x] (W - Q)^T, the mean output shift of "
         "the quantization error on the calibration inputs, after each "
         "quantized matmul (one f32 per output, counted in bits/weight)">
];

def QntMixedPrecision : Pass<"qnt-mixed-precision", "::mlir::ModuleOp"> {
  let summary = "Chooses per-layer bits and group sizes under a budget";
  let description = [{
    Mixed precision from a noise model (QReg, ALGORITHMS.md §12): for every
    selected layer and every candidate grid (`bits-options` x
    `group-options`, 0 meaning per channel, asymmetric unless `symmetric`),
    the increase of the layer's output error is predicted from its Hessian
    H = X^T X: `noise-model=trace` takes Delta^2 / 12 times the trace of
    each scale group's Hessian block (uniform rounding noise), `measured`
    rounds to nearest and takes tr(D H D^T). One grid per layer is then
    chosen to minimize the summed prediction with the stored bits (codes,
    scales and zeros) at most `budget` bits per weight over the selected
    layers: a multiple-choice knapsack solved exactly by dynamic
    programming. Under `quant-compile --recipe` each layer's prediction is
    scaled by its sensitivity: how much of its output error reaches the
    transformer block's output (measured once per layer with a 3-bit probe
    on `loss-sequences` windows), since errors of q and k are damped by
    the softmax while o and down write to the residual stream.

    Every candidate stores its scales as `scale-type` says (f16 scales make
    small groups cheaper, and the choice is recorded with the grid).

    The pass quantizes nothing: it records each choice on the layer's
    matmul as `qnt.layer_settings = "bits=3:group-size=32"`, which the next
    weight method (qnt-rtn, qnt-gptq, qnt-awq, ...) applies after its own
    options. The report lists the predicted relative error of each layer;
    the method's report then gives the measured one.

    ```
    quant-opt model.mlir --pass-pipeline='builtin.module(
        qnt-mixed-precision{stats=stats.safetensors budget=4.0},
        qnt-gptq{stats=stats.safetensors act-order=1})'
    ```
  }];
  let options = !listconcat(QntWeightMethodOptions, [
    Option<"budget", "budget", "double", /*default=*/"4.0",
           "Bits per weight over the selected layers, every stored part "
           "counted">,
    ListOption<"bitsOptions", "bits-options", "int64_t",
               "Candidate bit widths (default 2,3,4,5,6,8)">,
    ListOption<"groupOptions", "group-options", "int64_t",
               "Candidate group sizes, 0 for per channel (default "
               "32,64,128,0)">,
    Option<"lossSequences", "loss-sequences", "int64_t", /*default=*/"16",
           "Calibration windows on which each layer's sensitivity (its "
           "error's effect on the block output) is measured (0: all)">,
    Option<"noiseModel", "noise-model", "::mlir::qnt::NoiseModel",
           /*default=*/"::mlir::qnt::NoiseModel::Measured",
           "How a layer's output error is predicted",
           [{::llvm::cl::values(
             clEnumValN(::mlir::qnt::NoiseModel::Trace, "trace",
                        "Delta^2 / 12 times the Hessian trace per group"),
             clEnumValN(::mlir::qnt::NoiseModel::Measured, "measured",
                        "tr(D H D^T) of round-to-nearest"))}]>
  ]);
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def QntRtn : Pass<"qnt-rtn", "::mlir::ModuleOp"> {
  let summary = "Round-to-nearest quantization of matmul weights";
  let description = [{
    Quantizes the weight of every selected `linalg.matmul` (plain `[K, N]`
    weights and transpose-B `[N, K]` weights) whose weight is an
    `arith.constant` or a `qnt.param`, by round-to-nearest onto a uniform
    integer grid (`format=int`) or a minifloat grid
    (`format=e2m1|e3m2|e2m3|e4m3|e5m2`).

    Scales: asymmetric integer grids use min/max over each scale group with
    the range widened to include 0; symmetric grids use absmax /
    (2^(bits-1) - 1); minifloat grids use absmax / (largest finite value).
    Rounding is half-to-even (ALGORITHMS.md §0).

    Output IR: the weight is replaced by `qnt.dequant` of its storage
    components (a `linalg.transpose` restores the `[K, N]` layout of a
    plain matmul); the matmul itself is unchanged. Run
    `qnt-fuse-dequant-matmul` afterwards to fuse them.

    Constant weights become constant components. Weights read through
    `qnt.param` are written to the new safetensors file `output` (never the
    input files), named `<param>.<component>`, and referenced by new
    `qnt.param` ops; `output` is appended to the module's `qnt.param_files`.

    Layer selection, per-layer overrides, statistics, the report and ragged
    groups are those of every weight method (docs/PTQ.md): by default a
    group size that does not divide K leaves a shorter last group
    (stories260K's down-projection, K = 172 = 5 x 32 + 12, with
    group-size=32); `indivisible-groups=per-channel` quantizes such a weight
    per output channel instead (with a remark), `error` rejects it. On an
    imported model, the classifier in `@head` stays float unless
    `quantize-head`. RTN is data-free: with `stats=`, the report measures
    the output error on the calibration inputs.
  }];
  let options = QntWeightMethodOptions;
  let statistics = [
    Statistic<"numQuantized", "weights-quantized", "Weights quantized">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect", "::mlir::qnt::QntDialect"
  ];
}

def QntGptq : Pass<"qnt-gptq", "::mlir::ModuleOp"> {
  let summary = "GPTQ quantization of matmul weights";
  let description = [{
    Quantizes the selected matmul weights with GPTQ (ALGORITHMS.md §1): the
    columns of each weight are rounded one at a time, in natural order or
    by decreasing Hessian diagonal (`act-order`), and each rounding error is
    compensated on the columns not yet rounded through the Cholesky factor
    of the damped inverse Hessian H = X^T X of the layer's inputs, in lazy
    batches of `block-size` columns. Any scalar grid works: uniform 2..8-bit
    integers (symmetric or not) and the minifloat formats, per channel or
    per group (ragged last groups included).

    The Hessians come from `stats=<file>` (quant-calibrate's statistics,
    taken on the float model: a one-shot, float-stream use). Quantizing a
    model block by block on the quantized stream, as the reference does,
    is what `quant-compile --recipe` does with this method.

    With `act-order` and per-group scales, groups are formed in the
    processing order, as in the reference: the encoded weight stores the
    columns permuted, and the layer's input is gathered with the same
    permutation (a `linalg.generic` before the matmul), which is exact.
    `static-groups` instead computes the group scales on the original
    weights in natural order and needs no permutation.

    A Hessian that is not positive definite gets ten times the damping (a
    remark says so), up to four times, then is an error naming the layer.
    A missing layer in the statistics, a channel-count mismatch or
    non-finite statistics are errors.

    ```
    quant-opt model.mlir --pass-pipeline='builtin.module(qnt-gptq{
        stats=stats.safetensors bits=4 group-size=32 act-order=1
        output=model-q4.safetensors})'
    ```
  }];
  let options = !listconcat(QntWeightMethodOptions, [
    Option<"percDamp", "damp", "double", /*default=*/"0.01",
           "Dampening added to the Hessian diagonal, relative to its mean">,
    Option<"blockSize", "block-size", "int64_t", /*default=*/"128",
           "Columns per lazy batch">,
    Option<"actOrder", "act-order", "bool", /*default=*/"false",
           "Quantize columns by decreasing Hessian diagonal">,
    Option<"staticGroups", "static-groups", "bool", /*default=*/"false",
           "Group scales from the original weights in natural order">,
    Option<"mse", "mse", "bool", /*default=*/"false",
           "Search the scale range per group (the reference's mse option)">,
    Option<"freshGroupParams", "fresh-group-params", "bool",
           /*default=*/"false",
           "Group parameters from the current weights, with the updates of "
           "the lazy batch's earlier columns (the reference uses the "
           "weights at the batch's start)">
  ]);
  let statistics = [
    Statistic<"numQuantized", "weights-quantized", "Weights quantized">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect", "::mlir::qnt::QntDialect"
  ];
}

def QntPtq161 : Pass<"qnt-ptq161", "::mlir::ModuleOp"> {
  let summary = "PTQ1.61: salient input channels at 4 bits, the rest binarized";
  let description = [{
    Quantizes the selected matmul weights with PTQ1.61 (ALGORITHMS.md §5):
    the input channels whose activation absmax is among the top `ratio`
    (the reference's rule: at least the floor(ratio K)-th largest) keep
    `salient-bits`-bit asymmetric per-row integers, with the row's min and
    max taken over the whole row as the reference does; the other channels
    are binarized per row, r1_r r2_j (alpha_r sign(W - mu_r) + mu_r), with
    mu_r and alpha_r starting as the means of the row's non-salient non-zero
    entries and of their magnitudes and r1 = r2 = 1.

    With `epochs` > 0 (the reference's 20) each transformer block then
    learns alpha (`lr`), the row rescaling r1 and the column rescaling r2
    (`rescale-lr`) by Adam at constant learning rates on the reference's
    loss: the mean squared error and -log |mean cosine along the hidden
    dimension| of the block's output on its quantized-stream input, against
    the float block's output on the float stream and against the float
    block's output on the same quantized-stream input; an epoch is one step
    per `batch-sequences` calibration sequences. The gradients come from
    the block's IR (qnt-differentiate), as for qnt-flexround, so it runs
    block by block under `quant-compile --recipe` (docs/Recipes.md); run
    alone it needs `epochs=0`. Training stores r1 in alpha and mu and r2 as
    the layer's input scale (a `qnt.smooth` of 1 / r2 before the matmul).
    The encoding is `#qnt.salient` with its channel map. The absmax comes
    from `stats=<file>` or, under `quant-compile --recipe`, from the
    quantized stream.

    ```
    quant-opt model.mlir --pass-pipeline='builtin.module(qnt-ptq161{
        stats=stats.safetensors ratio=0.2 epochs=0
        output=model-ptq161.safetensors})'
    ```
  }];
  let options = !listconcat(QntWeightMethodOptions, [
    Option<"ratio", "ratio", "double", /*default=*/"0.2",
           "Share of input channels kept salient (by activation absmax)">,
    Option<"salientBits", "salient-bits", "int", /*default=*/"4",
           "Bits of the salient channels' asymmetric per-row integers">,
    Option<"errorFeedback", "error-feedback", "bool", /*default=*/"false",
           "Start from GPTQ-style error feedback: binarized channels first, "
           "then salient ones, each one's error spread over the channels "
           "not yet quantized through the inverse Hessian (not in the "
           "reference)">,
    Option<"epochs", "epochs", "int64_t", /*default=*/"20",
           "Passes over the calibration sequences per transformer block; 0 "
           "keeps the starting point (no training)">,
    Option<"batchSequences", "batch-sequences", "int64_t", /*default=*/"1",
           "Calibration sequences per step (gradients averaged)">,
    Option<"seed", "seed", "uint64_t", /*default=*/"0",
           "Seeds the order in which calibration sequences are drawn">,
    Option<"learningRate", "lr", "double", /*default=*/"5e-4",
           "Adam learning rate of the binarization scales alpha">,
    Option<"rescaleLearningRate", "rescale-lr", "double", /*default=*/"1e-3",
           "Adam learning rate of the row and column rescaling r1, r2">,
    Option<"predictionWeight", "prediction-weight", "double",
           /*default=*/"0",
           "Weight of PD-Quant's prediction difference added to the loss: "
           "KL(softmax(z_fp / T) || softmax(z_q / T)) of the logits the rest "
           "of the float network computes from the block's output (not in "
           "the reference; 0 leaves it out)">,
    Option<"temperature", "temperature", "double", /*default=*/"4",
           "Softmax temperature of the prediction difference">
  ]);
  let statistics = [
    Statistic<"numQuantized", "weights-quantized", "Weights quantized">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect", "::mlir::qnt::QntDialect"
  ];
}

def QntAqlm : Pass<"qnt-aqlm", "::mlir::ModuleOp"> {
  let summary = "AQLM additive-codebook quantization of matmul weights";
  let description = [{
    Quantizes the selected matmul weights with AQLM (ALGORITHMS.md §10):
    each row is a scale times, per input group of `in-group-size` columns,
    the sum of one word from each of `codebooks` codebooks of
    2^`code-bits` words (`#qnt.codebook`). Scales start at the row norms
    and the codebooks at residual k-means; then phases of Adam on codebooks
    and scales (betas (0, 0.95), amsgrad) alternate with a beam search
    over the codes that uses the closed-form change of the layer's output
    error tr(dW H dW^T), H = X^T X / T, until a phase improves it by less
    than `relative-tolerance`. The result is the best state seen.

    The int-grid options (`bits`, `format`, `group-size`, ...) do not
    apply, except `scale-type` (f16 row scales, the codes and the other
    scales chosen for the rounded values); per-layer overrides take
    `codebooks`, `code-bits`,
    `in-group-size` and `beam-size` (a group size must divide the layer's
    input channels). Bits per weight count the codes, the codebooks and
    the scales.

    `share-codebooks` stores one set of codebooks for several layers (the
    layers of a block, of a kind across blocks, or of the whole model), so
    that a small model is not dominated by codebook storage. The shared
    codebooks are residual k-means over the groups of all those layers'
    weights (each row divided by its RMS), fitted before any of them is
    quantized and fixed from then on: each layer alternates beam searches
    over its codes with the closed-form least-squares row scales on its
    own statistics (up to `max-epochs` passes, stopped by
    `relative-tolerance`; `adam-steps` and `lr` do not apply). They are one parameter (`aqlm.codebooks` model-wide,
    else `aqlm.codebooks.<block or kind>`) read by every sharing matmul,
    and each layer's bits per weight carry its share of them (by weight
    count). Layers that share codebooks must have the same configuration.

    `finetune-epochs` > 0 adds AQLM's block fine-tuning: the layers of each
    transformer block are quantized as above, then, with their codes
    frozen, Adam (`finetune-lr`, cosine decay) trains their row scales and
    their codebooks (block-shared ones as one parameter, the gradients of
    its layers summed; kind- and model-shared ones stay as fitted, since
    other blocks already run them) and,
    with `finetune-norm-gains` (default), the block's norm gains on the
    block's output error, its input from the quantized stream and its
    target the float block's output on the float stream, by the same
    trainer and block adjoint as qnt-flexround. A trained norm gain g
    comes back as the input scale 1 / g of the layers reading that norm
    (one qnt.smooth), which a following qnt-fold-smooth folds into the
    norm's gain exactly; bits per weight count it as folded, as AWQ's
    (without act-bits: the model would quantize the smoothed input). A block whose loss does not improve keeps the
    method's result. It runs block by block under quant-compile --recipe
    (docs/Recipes.md).

    ```
    quant-opt model.mlir --pass-pipeline='builtin.module(qnt-aqlm{
        stats=stats.safetensors codebooks=2 code-bits=8 in-group-size=8
        output=model-aqlm.safetensors})'
    ```
  }];
  let options = !listconcat(QntWeightMethodOptions, [
    Option<"numCodebooks", "codebooks", "int", /*default=*/"2",
           "Codebooks M (their words are added)">,
    Option<"codeBits", "code-bits", "int", /*default=*/"8",
           "Bits B per code: 2^B words per codebook">,
    Option<"inGroupSize", "in-group-size", "int64_t", /*default=*/"8",
           "Input channels per codebook word">,
    Option<"beamSize", "beam-size", "int", /*default=*/"1",
           "Hypotheses kept per row by the beam search">,
    Option<"kmeansIterations", "kmeans-iterations", "int", /*default=*/"100",
           "Lloyd iterations of the residual k-means initialization">,
    Option<"maxEpochs", "max-epochs", "int", /*default=*/"100",
           "Most Adam phases (each followed by a beam search pass)">,
    Option<"adamSteps", "adam-steps", "int", /*default=*/"100",
           "Adam steps on codebooks and scales per phase">,
    Option<"learningRate", "lr", "double", /*default=*/"1e-4",
           "Adam learning rate of the codebook phases">,
    Option<"relativeTolerance", "relative-tolerance", "double",
           /*default=*/"0.01",
           "Stop when a phase leaves loss / previous loss above 1 - this">,
    Option<"seed", "seed", "uint64_t", /*default=*/"0",
           "Seeds k-means and the beam search's group order">,
    Option<"shareCodebooks", "share-codebooks", "::mlir::qnt::CodebookSharing",
           /*default=*/"::mlir::qnt::CodebookSharing::None",
           "Which layers store one set of codebooks",
           [{::llvm::cl::values(
             clEnumValN(::mlir::qnt::CodebookSharing::None, "none",
                        "each layer its own"),
             clEnumValN(::mlir::qnt::CodebookSharing::Block, "block",
                        "the layers of one decoder block"),
             clEnumValN(::mlir::qnt::CodebookSharing::Kind, "kind",
                        "the layers of one kind across blocks"),
             clEnumValN(::mlir::qnt::CodebookSharing::Model, "model",
                        "every quantized layer"))}]>,
    Option<"finetuneEpochs", "finetune-epochs", "int64_t", /*default=*/"0",
           "Passes over the calibration sequences of each block's "
           "fine-tuning (0: none)">,
    Option<"finetuneLearningRate", "finetune-lr", "double",
           /*default=*/"1e-4",
           "Adam learning rate of the block fine-tuning">,
    Option<"finetuneBatchSequences", "finetune-batch-sequences", "int64_t",
           /*default=*/"1",
           "Calibration sequences per fine-tuning step">,
    Option<"finetuneNormGains", "finetune-norm-gains", "bool",
           /*default=*/"true",
           "Fine-tuning also trains the norm gains (as input scales that "
           "qnt-fold-smooth folds)">
  ]);
  let statistics = [
    Statistic<"numQuantized", "weights-quantized", "Weights quantized">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect", "::mlir::qnt::QntDialect"
  ];
}

//===----------------------------------------------------------------------===//
// Transforms
//===----------------------------------------------------------------------===//


def QntDifferentiate : Pass<"qnt-differentiate", "::mlir::ModuleOp"> {
  let summary = "Builds the adjoint (reverse-mode gradient) of a function";
  let description = [{
    Adds `<function>_adjoint` (or `adjoint-name`), the vector-Jacobian
    product of `function` with respect to the arguments `wrt`:

    ```
    f(a_0, ..., a_n) -> (r_0, ..., r_m)
    f_adjoint(a_0, ..., a_n, dr_0, ..., dr_m) -> (da_w0, da_w1, ...)
    ```

    one cotangent per result in, one gradient per `wrt` argument out. The
    adjoint recomputes the forward (the same ops and kernels) and then runs
    the reverse sweep, so it compiles and runs through the same CPU
    pipeline. Rules cover linalg generics and named ops (sum, maximum and
    minimum reductions), their scalar arith/math bodies (rounding is
    straight-through), gathers (a scatter-add), tensor reshapes, slices
    and casts, `qnt.matmul` with respect to its activation, and the other
    qnt compute ops through their reference lowering (docs/Autodiff.md
    lists them). An op
    without a rule on a differentiated value, a non-float argument in
    `wrt`, or a non-float result is an error at the op or argument.

    ```
    quant-opt block.mlir --qnt-differentiate="function=block0 wrt=0"
    ```
  }];
  let options = [
    Option<"function", "function", "std::string", /*default=*/"\"\"",
           "The function to differentiate">,
    ListOption<"wrt", "wrt", "unsigned",
               "Indices of the arguments to differentiate with respect to "
               "(default: every float tensor argument)">,
    Option<"adjointName", "adjoint-name", "std::string", /*default=*/"\"\"",
           "Name of the adjoint function (default: <function>_adjoint)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::tensor::TensorDialect",
    "::mlir::qnt::QntDialect"
  ];
}

def QntFoldSmooth : Pass<"qnt-fold-smooth", "::mlir::ModuleOp"> {
  let summary = "Folds qnt.smooth exactly into the producer of its input";
  let description = [{
    Removes every `qnt.smooth` (x / s, from AWQ, SmoothQuant or
    equalization) by folding 1/s into the op that produces x, which is
    exact up to float rounding (passes/SmoothFolding.h):
      - a normalization's per-channel gain: gain / s;
      - a linear layer's weight rows: a float weight's rows, or the per-row
        scales of a uniform or minifloat encoding, divided by s;
      - the linear factor of an elementwise product (SwiGLU's up
        projection).
    Every user of x must be a `qnt.smooth` with the same constant factors.
    Folded parameters are written to `output` (a new safetensors file added
    to the module's parameter files) under the parameter's name with a
    `.folded` suffix; folded constants are rewritten in place. A smooth
    that cannot be folded is an error saying why.

    With `verify`, the module is run before and after the fold on the same
    inputs (an imported model: every block on the embeddings of a token
    sequence; otherwise every public function on seeded random inputs) and
    the pass fails when an output's relative difference exceeds
    `tolerance`.

    ```
    quant-opt awq.mlir --pass-pipeline='builtin.module(qnt-fold-smooth{
        output=folded.safetensors verify=1})'
    ```
  }];
  let options = [
    Option<"output", "output", "std::string", /*default=*/"\"\"",
           "Safetensors file for the folded parameters">,
    Option<"verify", "verify", "bool", /*default=*/"false",
           "Run the module before and after and compare its outputs">,
    Option<"tolerance", "tolerance", "double", /*default=*/"1e-5",
           "Largest relative output difference verify accepts">
  ];
  let statistics = [
    Statistic<"numFolded", "smooths-folded", "qnt.smooth ops folded">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::qnt::QntDialect"
  ];
}

def QntEqualize : Pass<"qnt-equalize", "::mlir::ModuleOp"> {
  let summary = "Cross-layer weight equalization of exactly rescalable pairs";
  let description = [{
    For every linear layer W2 whose input is produced by another linear
    layer W1 through a per-channel homogeneous map (the SwiGLU product for
    up -> down, attention's softmax(Q K^T) V for v -> o, heads of one KV
    group tied), balances their ranges (lib/numerics Equalization.h):
    r1_j = max|W1[j, :]|, r2_j = max|W2[:, c]| over the columns c reading
    channel j, t_j = r1_j^alpha / r2_j^(1-alpha); W2's columns are multiplied
    by t and a `qnt.smooth` dividing W2's input by t is folded into W1's
    rows exactly as qnt-fold-smooth folds it. Both weights must still be
    float (run it before quantization, as the minifloat paper's pipeline
    does); pairs in a LLaMA block share no weight, so one pass reaches the
    fixed point of Brevitas's iterated equalization.

    Rescaled parameters are written to `output` under the parameter's name
    with an `.equalized` (consumer) or `.folded` (producer) suffix. `layers`
    selects consumers by name (a regex; default every pair found). With
    `verify`, the module is run before and after (as qnt-fold-smooth does)
    and the pass fails when an output moves beyond `tolerance`.

    ```
    quant-opt model.mlir --pass-pipeline='builtin.module(qnt-equalize{
        output=eq.safetensors verify=1})'
    ```
  }];
  let options = [
    Option<"alpha", "alpha", "double", /*default=*/"0.5",
           "Balance exponent: t = r1^alpha / r2^(1-alpha), in [0, 1]">,
    Option<"layers", "layers", "std::string", /*default=*/"\"\"",
           "Regex over consumer layer names (default: every pair)">,
    Option<"output", "output", "std::string", /*default=*/"\"\"",
           "Safetensors file for the rescaled parameters">,
    Option<"verify", "verify", "bool", /*default=*/"false",
           "Run the module before and after and compare its outputs">,
    Option<"tolerance", "tolerance", "double", /*default=*/"1e-5",
           "Largest relative output difference verify accepts">
  ];
  let statistics = [
    Statistic<"numPairs", "pairs-equalized", "layer pairs equalized">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::qnt::QntDialect"
  ];
}

def QntSmooth : Pass<"qnt-smooth", "::mlir::ModuleOp"> {
  let summary = "SmoothQuant scales, then round-to-nearest";
  let description = [{
    SmoothQuant's equivalent transformation (ALGORITHMS.md §3) before
    weight quantization: for each group of layers sharing an input whose
    producer can absorb a scale (passes/SmoothFolding.h), the input is
    divided by s_j = max|X_j|^alpha / max_i |W_ij|^(1-alpha) (the weight
    maximum over every layer of the group; activation maxima from the
    calibration statistics, clamped at >= 1e-5) and the weights' input
    columns are multiplied by it; the scaled weights are then rounded to
    nearest on the requested grid. Groups whose input cannot absorb a scale
    are rounded unscaled. The division is a `qnt.smooth` that
    `qnt-fold-smooth` folds exactly.

    SmoothQuant+ is this with one alpha for the whole model, chosen on the
    quantized model's output: `quant-compile` recipes search it with
    `search: {option: alpha, values: [...]}` on the step (docs/Recipes.md).

    ```
    quant-opt model.mlir --pass-pipeline='builtin.module(qnt-smooth{
        stats=stats.safetensors alpha=0.5 bits=4 group-size=32},
        qnt-fold-smooth)'
    ```
  }];
  let options = !listconcat(QntWeightMethodOptions, [
    Option<"alpha", "alpha", "double", /*default=*/"0.5",
           "Migration strength in [0, 1]">
  ]);
  let statistics = [
    Statistic<"numQuantized", "weights-quantized", "Weights quantized">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect", "::mlir::qnt::QntDialect"
  ];
}

// The training options of the block-reconstruction methods
// (passes/ptq/LearnedRounding.h: ReconstructionOptions).
defvar QntReconstructionOptions = [
  Option<"iterations", "iterations", "int64_t", /*default=*/"5000",
         "Adam steps per transformer block">,
  Option<"batchSequences", "batch-sequences", "int64_t", /*default=*/"1",
         "Calibration sequences per step (gradients averaged)">,
  Option<"seed", "seed", "uint64_t", /*default=*/"0",
         "Seeds the order in which calibration sequences are drawn (and "
         "qnt-pdquant's input mixing)">,
  Option<"earlyStopPatience", "early-stop-patience", "int64_t",
         /*default=*/"0",
         "Stop a block after this many windows (1/50 of the iterations) "
         "without relative improvement early-stop-tolerance on the best "
         "window's mean loss; 0 never stops early">,
  Option<"earlyStopTolerance", "early-stop-tolerance", "double",
         /*default=*/"1e-3",
         "Relative improvement a window must make to count">
];

def QntFlexRound : Pass<"qnt-flexround", "::mlir::ModuleOp"> {
  let summary = "FlexRound: learned element-wise division, block by block";
  let description = [{
    Quantizes the selected matmul weights with FlexRound (ALGORITHMS.md
    §9), in the authors' code form: each weight's quantizer becomes
    W^ = exp(d1) * clamp(round(W / exp(d1 + D2 + d3)), -z, 2^b-1-z) with a
    per-group (or per-row) log grid d1, an element-wise D2 and a per-row d3
    learned by Adam (cosine decay to 0) on the transformer block's output:
    the block's input from the quantized stream, the target the float
    block's output on the float stream, the loss the squared error summed
    over features and averaged over tokens. d1 starts at the min/max grid
    of round-to-nearest (so iteration 0 is RTN), D2 and d3 at 0; the zero
    point z is fixed. The gradients come from the block's own IR
    (qnt-differentiate on the block with the quantizers written in,
    docs/Autodiff.md), run by the CPU pipeline. At the end the codes and
    exp(d1) are stored as the standard integer encoding: nothing learned
    remains at run time.

    It trains on calibration data, so it runs block by block under
    `quant-compile --recipe` (docs/Recipes.md); run alone it reports that.
    Integer grids per channel or per group (ragged last groups included),
    and minifloat grids (`format`): there W^ = exp(d1) * Q(W / exp(d1 + D2
    + d3)) with Q rounding to the format's values (no zero point), stored
    as the standard minifloat encoding.
  }];
  let options = !listconcat(QntWeightMethodOptions, QntReconstructionOptions, [
    Option<"learningRate", "lr", "double", /*default=*/"3e-3",
           "Adam learning rate (the reference's W4A16 value)">
  ]);
  let statistics = [
    Statistic<"numQuantized", "weights-quantized", "Weights quantized">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::tensor::TensorDialect",
    "::mlir::qnt::QntDialect"
  ];
}

def QntAdaRound : Pass<"qnt-adaround", "::mlir::ModuleOp"> {
  let summary = "AdaRound: learned up or down rounding, block by block";
  let description = [{
    Quantizes the selected matmul weights with AdaRound (ALGORITHMS.md §6,
    §7 and §15): the grid (min/max scale and zero point per group or row)
    stays fixed and each element rounds to floor(W / s) + h(V), with the
    rectified sigmoid h(V) = clamp(sigmoid(V) 1.2 - 0.1, 0, 1) learned by
    Adam on the transformer block's output (the same data and loss as
    qnt-flexround) plus rounding-weight times the rounding regularizer
    sum(1 - |2 h(V) - 1|^beta), off for the first `warmup` of the
    iterations, then with beta annealed from beta-start to beta-end. V
    starts where h(V) equals the fractional part of W / s (round to
    nearest's value); at the end each element rounds up where h(V) >= 1/2
    and the codes are stored as the standard integer encoding. On a
    minifloat grid (`format`) the scale s is round to nearest's and each
    element becomes s (L + h(V) (U - L)) between the grid points L <= W / s
    <= U, stored as the standard minifloat encoding.

    Like qnt-flexround it runs block by block under
    `quant-compile --recipe`.
  }];
  let options = !listconcat(QntWeightMethodOptions, QntReconstructionOptions, [
    Option<"learningRate", "lr", "double", /*default=*/"1e-3",
           "Adam learning rate (Brevitas' learned rounding)">,
    Option<"roundingWeight", "rounding-weight", "double", /*default=*/"0.01",
           "Weight of the rounding regularizer">,
    Option<"betaStart", "beta-start", "double", /*default=*/"20",
           "Exponent of the regularizer when it starts">,
    Option<"betaEnd", "beta-end", "double", /*default=*/"2",
           "Exponent of the regularizer at the last iteration">,
    Option<"warmup", "warmup", "double", /*default=*/"0.2",
           "Fraction of the iterations without the regularizer">
  ]);
  let statistics = [
    Statistic<"numQuantized", "weights-quantized", "Weights quantized">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::tensor::TensorDialect",
    "::mlir::qnt::QntDialect"
  ];
}

def QntPdQuant : Pass<"qnt-pdquant", "::mlir::ModuleOp"> {
  let summary = "PD-Quant: AdaRound with the prediction difference, block "
                "by block";
  let description = [{
    Quantizes the selected matmul weights with PD-Quant (ALGORITHMS.md §7)
    adapted to LLaMA blocks: AdaRound's learned rounding (as qnt-adaround)
    and, with act-bits, a learned clip ratio per layer that multiplies the
    run-time activation scale (qnt.fake_quant's clip: PD-Quant's learnable
    activation step size, for per-token scales), trained by Adam on

      |f_q(X_mix) - f_fp(X_dc)|^2 + rounding-weight * rounding term
      + prediction-weight * KL(softmax(z_fp / T) || softmax(z_q / T))

    z_q: the logits the rest of the float network (the later blocks and
    the head) computes from the quantized block's output on its
    quantized-stream input, the gradient carried back through that network
    by its adjoint; z_fp: the float model's logits. X_mix: QDrop's mixing
    of the quantized-stream input with the float one
    (quantized-input-probability). X_dc: the distribution correction,
    adapted to a network without BatchNorm: each sequence's float block
    input moved toward the calibration set's per-channel mean and standard
    deviation (qnt/numerics/DistributionCorrection.h; proximity weight
    1 / correction-proximity). prediction-weight 0 gives the same run
    without the prediction difference.

    Like qnt-flexround it runs block by block under
    `quant-compile --recipe`.
  }];
  let options = !listconcat(QntWeightMethodOptions, QntReconstructionOptions, [
    Option<"learningRate", "lr", "double", /*default=*/"3e-3",
           "Adam learning rate of the rounding variables (PD-Quant's)">,
    Option<"roundingWeight", "rounding-weight", "double", /*default=*/"0.01",
           "Weight of the rounding regularizer">,
    Option<"betaStart", "beta-start", "double", /*default=*/"20",
           "Exponent of the regularizer when it starts">,
    Option<"betaEnd", "beta-end", "double", /*default=*/"2",
           "Exponent of the regularizer at the last iteration">,
    Option<"warmup", "warmup", "double", /*default=*/"0.2",
           "Fraction of the iterations without the regularizer">,
    Option<"activationLearningRate", "act-lr", "double", /*default=*/"1e-3",
           "Adam learning rate of the activation clip ratios (0: not "
           "learned; the reference's 4e-5 is for absolute step sizes)">,
    Option<"predictionWeight", "prediction-weight", "double",
           /*default=*/"10",
           "Weight of the prediction difference (1 / lambda_r, the "
           "reference's lambda_r = 0.1); 0 leaves it out">,
    Option<"temperature", "temperature", "double", /*default=*/"4",
           "Softmax temperature of the prediction difference">,
    Option<"quantizedInputProbability", "quantized-input-probability",
           "double", /*default=*/"0.5",
           "Probability that an element of the squared error's input comes "
           "from the quantized stream (QDrop); 1: always">,
    Option<"distributionCorrection", "distribution-correction", "bool",
           /*default=*/"true",
           "Correct the float block inputs toward the calibration set's "
           "per-channel statistics">,
    Option<"correctionProximity", "correction-proximity", "double",
           /*default=*/"0.02",
           "lambda_c: the correction's proximity term weighs 1 / lambda_c">,
    Option<"correctionIterations", "correction-iterations", "int64_t",
           /*default=*/"500", "Adam steps of the distribution correction">,
    Option<"correctionLearningRate", "correction-lr", "double",
           /*default=*/"1e-3", "Adam learning rate of the correction">
  ]);
  let statistics = [
    Statistic<"numQuantized", "weights-quantized", "Weights quantized">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::tensor::TensorDialect",
    "::mlir::qnt::QntDialect"
  ];
}

def QntAwq : Pass<"qnt-awq", "::mlir::ModuleOp"> {
  let summary = "AWQ: activation-aware scales and clipping, then RTN";
  let description = [{
    Quantizes the selected matmul weights with AWQ (ALGORITHMS.md §2), one
    group of layers sharing an input at a time (q, k, v | o | gate, up |
    down on LLaMA). For the group, a per-input-channel scale
    s = mean|x|^alpha (normalized so that sqrt(max s * min s) = 1) is chosen
    on the grid alpha = 0, 1/scale-grid, ..., as the one whose quantized
    group Q(W diag(s)) diag(s)^-1 loses least. Under
    `quant-compile --recipe` the loss is the mean squared error of the
    transformer block's output against the float block on `loss-sequences`
    of the calibration windows (the module every layer feeds); with
    `stats=` only (quant-opt), it is the group's own output error through
    the Hessian. Then each scale group's clipping range
    absmax * (1 - i/20), i < 10, minimizing its output error on the scaled
    inputs is kept (skipped for the layers matching `no-clip`: q and k,
    whose outputs go through a softmax, as the reference does), and the
    clipped, scaled weight is rounded to nearest. Every granularity works,
    ragged groups included.

    The layer's input is divided by s with a `qnt.smooth` (shared by the
    group) that `qnt-fold-smooth` folds exactly into the producer: the
    normalization gain, the previous linear's rows, or the gated unit's
    linear factor. A scale is searched only where it folds; elsewhere
    (the attention output feeding o) the group gets clipping only, as the
    reference does for grouped-query attention, unless
    `unfoldable-scales=keep` asks for a run-time `qnt.smooth`.

    ```
    quant-opt model.mlir --pass-pipeline='builtin.module(qnt-awq{
        stats=stats.safetensors bits=4 group-size=32}, qnt-fold-smooth)'
    ```
  }];
  let options = !listconcat(QntWeightMethodOptions, [
    Option<"scaleGrid", "scale-grid", "int64_t", /*default=*/"20",
           "Grid points of alpha in [0, 1)">,
    Option<"clip", "clip", "bool", /*default=*/"true",
           "Search a clipping range per scale group">,
    Option<"noClip", "no-clip", "std::string",
           /*default=*/"\"\\\\.(wq|wk|q_proj|k_proj)\\\\.\"",
           "Layers (regex) whose weights are not clipped">,
    Option<"lossSequences", "loss-sequences", "int64_t", /*default=*/"16",
           "Calibration windows on which the block loss is measured "
           "(0: all)">,
    Option<"unfoldableScales", "unfoldable-scales",
           "::mlir::qnt::UnfoldableScales",
           /*default=*/"::mlir::qnt::UnfoldableScales::Skip",
           "Groups whose input producer cannot absorb a scale",
           [{::llvm::cl::values(
             clEnumValN(::mlir::qnt::UnfoldableScales::Skip, "skip",
                        "no scale, clipping only (the reference)"),
             clEnumValN(::mlir::qnt::UnfoldableScales::Keep, "keep",
                        "search a scale, keep qnt.smooth at run time"))}]>
  ]);
  let statistics = [
    Statistic<"numQuantized", "weights-quantized", "Weights quantized">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect", "::mlir::qnt::QntDialect"
  ];
}

def QntFuseDequantMatmul
    : Pass<"qnt-fuse-dequant-matmul", "::mlir::func::FuncOp"> {
  let summary = "Fuses qnt.dequant feeding a matmul into qnt.matmul";
  let description = [{
    Rewrites `linalg.matmul(x, linalg.transpose(qnt.dequant(...)))` and
    transpose-B `linalg.matmul(x, qnt.dequant(...))` whose accumulator is a
    zero-filled tensor into `qnt.matmul(x, ...)`, so that no backend
    materializes the float weight.

    Matmuls with a non-zero accumulator, mixed element types or a weight
    that is not a dequantization are left unchanged.
  }];
  let dependentDialects = ["::mlir::qnt::QntDialect"];
}

def QntInsertObservers : Pass<"qnt-insert-observers", "::mlir::func::FuncOp"> {
  let summary = "Observes the input activation of every linear layer";
  let description = [{
    Inserts `qnt.observe` on the input of every transpose-B `linalg.matmul`
    and every `qnt.matmul`, so that the calibration driver records that
    layer's input statistics. The observer is named after the layer's
    weight: the `qnt.param` name of a float weight, or the name location
    of a quantized weight's dequantization (qnt-rtn gives it the original
    parameter's name); other layers are named `<function>.linear<i>`.
    Layers sharing one input get one observer each (the statistics file has
    an entry per layer); already observed inputs are left alone.

    ```mlir
    %y = linalg.matmul ... ins(%x, %w : ...)   // %w = qnt.param "wq"
    // becomes
    %x1 = qnt.observe %x as "wq" stats ["absmax", "mean_abs", "hessian"]
    %y = linalg.matmul ... ins(%x1, %w : ...)
    ```
  }];
  let options = [
    ListOption<"stats", "stats", "std::string",
               "Statistics to record: absmax, mean_abs, hessian (default: "
               "all three)">
  ];
  let dependentDialects = ["::mlir::qnt::QntDialect"];
}

def QntExposeObservations
    : Pass<"qnt-expose-observations", "::mlir::ModuleOp"> {
  let summary = "Returns observed activations as extra function results";
  let description = [{
    The CPU calibration path: each `qnt.observe` is replaced by its input,
    and every distinct observed value becomes an extra result of its
    function, after the original results. The function attribute
    `qnt.observed` lists, per extra result, the observer names and the
    statistics they asked for:

    ```mlir
    func.func @block0(...) -> (..., tensor<?x64xf32>)
        attributes {qnt.observed = [
          {names = ["wq", "wk", "wv"], stats = ["absmax", "hessian"]} ]}
    ```

    The calibration driver accumulates the statistics on the host (in
    double precision) from those results. Functions with callers cannot
    change their signature and are rejected.
  }];
}

def QntBindParams : Pass<"qnt-bind-params", "::mlir::ModuleOp"> {
  let summary = "Turns qnt.param ops into function arguments";
  let description = [{
    Replaces every `qnt.param` in a function by a new trailing argument of
    the same type, carrying the argument attribute `qnt.param = "<name>"`,
    so that a runtime binds the weights (memory-mapped from their files)
    instead of compiling them into the code. Uses of one name share one
    argument. Functions with callers cannot change signature: binding
    parameters inside one is an error.
  }];
}

//===----------------------------------------------------------------------===//
// Lowerings
//===----------------------------------------------------------------------===//

def QntLowerToLinalg : Pass<"qnt-lower-to-linalg", "::mlir::func::FuncOp"> {
  let summary = "Lowers qnt compute ops to their reference linalg semantics";
  let description = [{
    The executable definition of every qnt compute op in plain
    linalg/arith/tensor:

    - `qnt.dequant` becomes a `linalg.generic` over `[N, K]` whose body is
      the encoding's `emitDequantElement` reading components with
      `tensor.extract`;
    - `qnt.matmul` becomes that dequantization followed by a transpose-B
      `linalg.matmul` in f32;
    - `qnt.smooth`, `qnt.lowrank_add` and `qnt.fake_quant` become
      elementwise generics, reductions and matmuls.

    `qnt.param` and `qnt.observe` are left in place. This is the reference
    the fused lowerings are tested against, not a fast path: it
    materializes the float weight.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def QntLowerMatmulFused
    : Pass<"qnt-lower-matmul-fused", "::mlir::func::FuncOp"> {
  let summary = "Lowers qnt.matmul to one loop nest that dequantizes in the "
                "inner loop";
  let description = [{
    Lowers `qnt.matmul` to a single `linalg.generic` over `(m, n, k)` with
    `k` innermost whose body dequantizes `W[n, k]` from the packed
    components (`tensor.extract`) and accumulates `x[m, k] * W[n, k]` in
    f32. Lowered to loops, the float weight matrix is never materialized:
    each weight element exists only in a register. Results of f16/bf16
    matmuls are rounded once at the end.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::scf::SCFDialect", "::mlir::tensor::TensorDialect"
  ];
}

def QntLowerMatmulCpu : Pass<"qnt-lower-matmul-cpu", "::mlir::func::FuncOp"> {
  let summary = "Lowers qnt.matmul (and dense transpose-B matmuls) to CPU "
                "vector kernels";
  let description = [{
    `strategy=vector` (the default) lowers every `qnt.matmul` to a kernel
    built from `scf.for` loops and vector ops (docs/CpuKernels.md): for each
    tile of `col-tile` weight rows and each tile of `row-tile` activation
    rows (then single rows; M may be dynamic), k advances by `vector-width`
    x `unroll` elements. Each run of `vector-width` weights is dequantized
    once by the encoding's `emitDequantVector` hook (wide loads of the
    packed bytes, the arithmetic on vectors), each input run is read once,
    and every (row, weight row) pair has its own accumulator (`vector.fma`);
    tiles of several rows use fewer weight rows, so that the accumulators
    fit in three quarters of the registers. A k remainder
    uses single runs and the last K % vector-width columns the scalar hook.
    The weight streams through once per call, whatever M.

    A `#qnt.salient` weight with f32 activations runs as two such kernels:
    a loop copies each input column to the salient or the rest part named
    by the channel map, then the salient part's kernel and the rest part's,
    which adds the first result, each with its own encoding's vector form.

    With `dense` (the default), `linalg.matmul` ops of the transpose-B form
    (`x[M, K] * W[N, K]^T`, the model's float linears) with static N and K
    and f32 operands get the same kernel, reading W directly.

    `strategy=loops` is `qnt-lower-matmul-fused`: one scalar loop nest,
    the reference the vector kernels are tested against.

    `vector-width=0` takes two of the host CPU's widest f32 vectors (32
    lanes with AVX-512, 16 with AVX, 8 otherwise).

    With `threads` other than 1, the tiles of weight rows of every kernel
    with at least `parallel-weights` weights form an `scf.forall` that
    writes disjoint column slices of the result; `qnt-cpu-pipeline` turns
    it into an OpenMP parallel loop (`scf-forall-to-parallel`,
    `convert-scf-to-openmp`) that the LLVM OpenMP runtime runs.

    With `activations=int8`, a `qnt.matmul` whose encoding has an integer
    form (`getIntegerForm`: uniform codes of 2 to 8 bits, and minifloats
    such as E2M1 whose values are small integers times a power of two)
    quantizes its activations to int8 on the fly, one scale per row and
    weight scale group, and computes each group's dot product exactly in
    integers: one load of packed codes per 64 bytes of codes (or per 64
    codes that straddle bytes), unsigned codes times signed activations
    four bytes per i32 lane (`vpdpbusd` with `int8-dot=vnni`), the scales
    and zero point applied once per group. Other encodings, and shapes the
    kernel does not take (groups not a multiple of 16), keep f32
    activations.

    Also with `activations=int8`, a `qnt.matmul` of two codebooks of at most
    8-bit codes stored in tiles (`#qnt.codebook<..., tile_rows = 128,
    tile_groups = 16>`), with `int8-dot=vbmi` or, with `int8-dot=auto`, on
    a host with AVX512-VBMI, with at most
    `lut-max-rows` activation rows (checked at run time when M is dynamic,
    the other rows taking the f32 kernel), runs the lookup-table kernel: the
    dot products of each input group with every codebook entry are
    tabulated as int8 once per call, one scale per tile of groups, and
    looked up by the codes with byte permutes, 32 weight rows per register.
  }];
  let options = [
    Option<"strategy", "strategy", "::mlir::qnt::CpuMatmulStrategy",
           /*default=*/"::mlir::qnt::CpuMatmulStrategy::Vector",
           "How qnt.matmul is lowered",
           [{::llvm::cl::values(
             clEnumValN(::mlir::qnt::CpuMatmulStrategy::Vector, "vector",
                        "vector kernels over runs of K"),
             clEnumValN(::mlir::qnt::CpuMatmulStrategy::Loops, "loops",
                        "one scalar loop nest (qnt-lower-matmul-fused)"))}]>,
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"0",
           "f32 lanes per run (0: twice the host CPU's widest vector)">,
    Option<"unroll", "unroll", "int64_t", /*default=*/"4",
           "Runs per k step (one scale load per step when it divides the "
           "group; int8 kernel: scale groups per step, 4 unless given)">,
    Option<"rowTile", "row-tile", "int64_t", /*default=*/"4",
           "Activation rows sharing each dequantized weight run (int8 "
           "kernel: 8 unless given)">,
    Option<"colTile", "col-tile", "int64_t", /*default=*/"4",
           "Weight rows processed side by side, sharing each input run "
           "(int8 kernel: 1 unless given)">,
    Option<"prefetch", "prefetch", "int64_t", /*default=*/"-1",
           "Software prefetch of packed codes this many bytes ahead (0: "
           "none; -1: the kernel's choice, 4096 in the int8 kernel, 2048 "
           "in the lookup-table kernel, none in the f32 kernel)">,
    Option<"dense", "dense", "bool", /*default=*/"true",
           "Also lower dense f32 transpose-B linalg.matmul ops">,
    Option<"threads", "threads", "int64_t", /*default=*/"0",
           "1: sequential loops; otherwise the weight tiles of kernels with "
           "at least parallel-weights weights form an scf.forall (threads "
           "once lowered to OpenMP)">,
    Option<"parallelWeights", "parallel-weights", "int64_t",
           /*default=*/"1048576",
           "Smallest N x K whose kernel is split over threads (smaller "
           "ones do not repay a fork and join)">,
    Option<"activations", "activations", "::mlir::qnt::CpuActivations",
           /*default=*/"::mlir::qnt::CpuActivations::F32",
           "Activation type of the quantized matmuls' vector kernels",
           [{::llvm::cl::values(
             clEnumValN(::mlir::qnt::CpuActivations::F32, "f32",
                        "f32 activations, dequantized weights"),
             clEnumValN(::mlir::qnt::CpuActivations::Int8, "int8",
                        "int8 activations per row and scale group, integer "
                        "byte dot products (encodings with an integer "
                        "form; the others keep f32)"))}]>,
    Option<"lutMaxRows", "lut-max-rows", "int64_t", /*default=*/"4",
           "activations=int8: most activation rows for which tiled codebook "
           "encodings run the lookup-table kernel (0: never)">,
    Option<"int8Dot", "int8-dot", "::mlir::qnt::CpuInt8Dot",
           /*default=*/"::mlir::qnt::CpuInt8Dot::Auto",
           "Instructions of the activations=int8 byte dot products",
           [{::llvm::cl::values(
             clEnumValN(::mlir::qnt::CpuInt8Dot::Auto, "auto",
                        "vbmi when the host CPU has AVX512-VNNI, -VBMI and "
                        "-BW, vnni with AVX512-VNNI and -BW, else generic"),
             clEnumValN(::mlir::qnt::CpuInt8Dot::Vbmi, "vbmi",
                        "vnni, and AVX512-VBMI byte permutes and shifts "
                        "(codes straddling bytes, the lookup-table kernel)"),
             clEnumValN(::mlir::qnt::CpuInt8Dot::Vnni, "vnni",
                        "x86 vpdpbusd and vpshufb intrinsics"),
             clEnumValN(::mlir::qnt::CpuInt8Dot::Generic, "generic",
                        "widening multiplies and reductions any target "
                        "runs"))}]>
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::linalg::LinalgDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::qnt::QntDialect",
    "::mlir::scf::SCFDialect", "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def QntLowerIntrinsics : Pass<"qnt-lower-intrinsics"> {
  let summary = "Lowers qnt.intrinsic to llvm.call_intrinsic";
  let description = [{
    Each `qnt.intrinsic "name"(args)` becomes `llvm.call_intrinsic "name"
    (args)` with the same types. `qnt-cpu-pipeline` runs it after
    bufferization and buffer deallocation, which reject ops with unknown
    side effects such as `llvm.call_intrinsic`.
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def QntApproximateMath : Pass<"qnt-approximate-math"> {
  let summary = "Replaces f32 math functions by MLIR's polynomial "
                "approximations";
  let description = [{
    Rewrites the `math` ops named by `ops` (default: `exp`) on f32 scalars
    and vectors into arith operations with MLIR's polynomial approximations
    (`populateMathPolynomialApproximationPatterns`). A libm call is opaque
    to LLVM's loop vectorizer; the arith form vectorizes, which is what
    makes the softmax of attention over a long KV cache cheap on the CPU.
    The approximation of `exp` is within 4 ulp of libm over the whole
    f32 range (unit test `ApproximateMathTest`), and keeps exp(-inf) = 0,
    which masked attention relies on. `qnt-cpu-pipeline` runs it before
    lowering to loops.
  }];
  let options = [
    ListOption<"ops", "ops", "std::string",
               "math op names to approximate (exp, expm1, log, log1p, log2, "
               "tanh, erf, erfc, atan, atan2, asin, acos, cbrt, sin, "
               "cos); default exp">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

def QntLowerMatmulGpu : Pass<"qnt-lower-matmul-gpu", "::mlir::ModuleOp"> {
  let summary = "Lowers qnt.matmul to fused dequantize GPU kernels";
  let description = [{
    Replaces every `qnt.matmul` by launches of GPU kernels that dequantize
    the packed weight in registers (GEMV) or on its way into shared memory
    (GEMM), added to the `gpu.module @qnt_kernels`. The kernels contain no
    per-encoding code of their own: they call the encoding's
    `emitDequantElement` hook, so every encoding is supported.

    - GEMV (decode): one warp per output column, lanes stream runs of
      `gemv-elements-per-lane` packed inputs, warp-shuffle reduction.
      Variants keep R = 1, 2, 4, ... `gemv-max-rows` activation rows in
      flight.
    - GEMM (prefill): `gemm-tile-m` x `gemm-tile-n` block tiles, k-steps
      of `gemm-tile-k`; tensor cores (`mma.sync` m16n8k16) for f16 and
      bf16 activations, FMAs for f32 activations (rounding an f32
      program's operands to f16 or tf32 would change its numerics).

    With `strategy=auto` the kernel is chosen by M (at run time when M is
    dynamic): the smallest GEMV variant holding M when M <= gemv-max-rows,
    else the GEMM. Operands are taken with `bufferization.to_buffer`; the
    result is a new buffer (`memref.alloc`) that the kernel fills. Host
    buffers must therefore be device-accessible (docs/GpuCodegen.md).

    ```mlir
    %y = qnt.matmul %x, #int4_g128(%codes, %scales, %zeros)
        : (tensor<?x4096xf16>, ...) -> tensor<?x14336xf16>
    // becomes (sketch)
    %m = memref.dim %xb, %c0
    scf.if %m <= 1 { gpu.launch_func @qnt_kernels::@matmul0_gemv_r1 ... }
    else ... { gpu.launch_func @qnt_kernels::@matmul0_gemm_mma ... }
    ```
  }];
  let options = [
    Option<"strategy", "strategy", "std::string", /*default=*/"\"auto\"",
           "Kernel choice: auto (by M), gemv or gemm">,
    Option<"gemvMaxRows", "gemv-max-rows", "int64_t", /*default=*/"16",
           "Largest M served by a GEMV kernel under strategy=auto">,
    Option<"gemvWarps", "gemv-warps", "int64_t", /*default=*/"4",
           "Warps (output columns) per GEMV block">,
    Option<"gemvElementsPerLane", "gemv-elements-per-lane", "int64_t",
           /*default=*/"8",
           "Consecutive inputs a GEMV lane dequantizes per step (multiple "
           "of 8)">,
    Option<"gemmTileM", "gemm-tile-m", "int64_t", /*default=*/"64",
           "GEMM block tile rows (multiple of 32)">,
    Option<"gemmTileN", "gemm-tile-n", "int64_t", /*default=*/"64",
           "GEMM block tile columns (multiple of 32)">,
    Option<"gemmTileK", "gemm-tile-k", "int64_t", /*default=*/"32",
           "GEMM k-step (multiple of 16)">
  ];
  let statistics = [
    Statistic<"numLowered", "matmuls-lowered", "qnt.matmul ops lowered">,
    Statistic<"numKernels", "kernels-built", "GPU kernels built">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::bufferization::BufferizationDialect",
    "::mlir::gpu::GPUDialect", "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect", "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect", "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def QntGpuPrepareLoops
    : Pass<"qnt-gpu-prepare-loops", "::mlir::func::FuncOp"> {
  let summary = "Puts bufferized linalg ops in the shape the GPU loop "
                "mapping needs";
  let description = [{
    Runs after bufferization, before `convert-linalg-to-parallel-loops`, in
    the whole-model GPU pipeline (docs/GpuCodegen.md, "Whole-model
    execution"):

    - a `linalg.generic` whose reduction iterators are not innermost is
      interchanged so that they are (the attention products of the LLaMA
      block reduce over the head dimension between two parallel ones).
      The parallel iterators then become one outer `scf.parallel` with the
      reductions as sequential loops inside it, which maps to one kernel
      whose threads each own one output element;
    - `memref.copy` (the KV-cache row insertion left by bufferization)
      becomes a copy `linalg.generic`, so that it runs as a kernel instead
      of a host `memcpy` of device memory.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def QntGpuMapLoops : Pass<"qnt-gpu-map-loops", "::mlir::func::FuncOp"> {
  let summary = "Tiles and maps every outermost scf.parallel to GPU blocks "
                "and threads";
  let description = [{
    For each outermost `scf.parallel` outside a `gpu.launch`, the leading
    dimensions are collapsed into one and the innermost one is tiled by
    `block-size` threads (fewer when its static extent is smaller; tiles
    are guarded by `scf.if`, so no extent has to be a multiple of the
    tile). The mapping attributes that `convert-parallel-loops-to-gpu`
    reads are then set: the collapsed dimension to blocks x (no 65535
    limit), the tile index of the innermost dimension to blocks y, the
    position inside the tile to threads x (consecutive threads touch
    consecutive elements of the innermost dimension); parallel loops nested
    deeper run sequentially inside the thread.
  }];
  let options = [
    Option<"blockSize", "block-size", "int64_t", /*default=*/"256",
           "Threads per block along the innermost dimension (a multiple of "
           "32 in 32..1024)">,
  ];
  let statistics = [
    Statistic<"numMapped", "loops-mapped", "scf.parallel nests mapped">
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect"];
}

def QntGpuDeviceMemory : Pass<"qnt-gpu-device-memory", "::mlir::ModuleOp"> {
  let summary = "Puts the buffers of host functions on the device, on one "
                "stream";
  let description = [{
    Runs after `gpu-kernel-outlining`. In every function outside a
    `gpu.module`:

    - a stream is taken at entry (`gpu.wait async`); every
      `gpu.launch_func` becomes asynchronous on it, so that launches are
      queued back to back and the host never waits for the device inside
      a function;
    - `memref.alloc` becomes a stream-ordered `gpu.alloc async`; a buffer
      that is not returned is freed with `gpu.dealloc async` before the
      return (the device keeps the order, the host does not wait);
    - what remains on the host may only read function arguments (a scalar
      such as the position) and compute shapes: a host `memref.load`,
      `memref.store` or `memref.copy` of a buffer made in the function is
      an error naming the op, since it would touch device memory from the
      host.

    Device-resident function arguments and results are the caller's: the
    runtime passes device buffers and receives device buffers it frees.
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def QntGpuMergeKernelModules
    : Pass<"qnt-gpu-merge-kernel-modules", "::mlir::ModuleOp"> {
  let summary = "Moves every GPU kernel into one gpu.module";
  let description = [{
    `gpu-kernel-outlining` puts each kernel in a `gpu.module` of its own,
    and `gpu-module-to-binary` then runs LLVM and ptxas once per module and
    chip; a LLaMA block has dozens of kernels. This pass moves the
    functions of every `gpu.module` into the first one (renaming a function
    whose name is taken) and retargets the launches, so that a model is
    one image per chip, loaded once.
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

#endif // QNT_PASSES_TD
