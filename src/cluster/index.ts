export { ClusterEnforcer, type EnforcerOptions, type EnforcerStats } from './enforcer.js';
export { ClusterPublisher, type PublisherStats } from './publisher.js';
export { REDIS_DEFAULTS, bansKey, streamKey, type ClusterRole, type RedisConfig } from './config.js';
export { decode, encode, checkWireTarget } from './codec.js';
