// Errors of the host half of crypto.subtle. They cross to the guest as {name, message} and the guest
// raises them as a TypeError (WebIDL conversion failures) or a DOMException with the spec's name,
// the names Node 20's webcrypto uses for the same inputs.

export type SubtleErrorName = 'TypeError' | 'NotSupportedError' | 'InvalidAccessError' | 'DataError' | 'OperationError' | 'SyntaxError';

export class SubtleError extends Error {
  constructor(
    readonly errorName: SubtleErrorName,
    message: string,
  ) {
    super(message);
  }
}

export const notSupported = (message: string): SubtleError => new SubtleError('NotSupportedError', message);
export const invalidAccess = (message: string): SubtleError => new SubtleError('InvalidAccessError', message);
export const dataError = (message: string): SubtleError => new SubtleError('DataError', message);
export const operationError = (message: string): SubtleError => new SubtleError('OperationError', message);
export const syntaxError = (message: string): SubtleError => new SubtleError('SyntaxError', message);
export const typeError = (message: string): SubtleError => new SubtleError('TypeError', message);
