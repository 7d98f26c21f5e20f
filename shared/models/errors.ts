// Typed errors of the model layer. A bad bundle or a bad input is permanent (retrying cannot help); a failure
// inside ONNX Runtime while running a loaded model is treated as retryable by callers that choose to.
export class ModelBundleError extends Error {
  override name = 'ModelBundleError';
  readonly retryable = false;
}

export class ModelInputError extends Error {
  override name = 'ModelInputError';
  readonly retryable = false;
}
