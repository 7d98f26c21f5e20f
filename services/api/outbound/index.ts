// Public surface of the outbound adapters for the API process: load the settings, build the outbound service.
export { loadOutboundConfig, OutboundSettingsSchema, OUTBOUND_DEFAULTS, type OutboundConfig } from './config';
export {
  createOutbound, execOutboundJob, readResult, OUTBOUND_QUEUES, deadLetterQueueName,
  type Outbound, type OutboundDeps, type OutboundJobData, type DeadLetterData, type JobOutcome,
} from './outbound';
export { RetryableDeliveryError, PermanentDeliveryError, RESULT_UNREADABLE, type Adapter } from './errors';
export { verifyWebhook, signWebhook, SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_HEADER } from './webhook/webhook';
export { deliveryKey, resultKey } from './idempotency';
