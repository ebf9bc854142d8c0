// The `onem2m-senv/pcsc` entry point: everything PC/SC for Node in one import
// (the main entry stays free of node: modules so that it runs in browsers).
export * from './index.ts';
export { PcscBackend, discoverPcscBackends, type PcscBackendOptions, type DiscoverPcscOptions, type CardContext, type CardConnection } from '../backends/pcsc/index.ts';
export { createVirtualCard, VpcdCard, VirtualCardOs, SenvApplet, KeyStore, type VirtualCard, type VirtualCardOptions, type CardHandler } from '../virtual-card/index.ts';
export type { VpcdCounters } from '../virtual-card/vpcd.ts';
export type { Applet, CardLimits, ChannelContext } from '../virtual-card/card.ts';
export type { SenvAppletOptions } from '../virtual-card/applet.ts';
export type { KeyRecord } from '../virtual-card/keystore.ts';
export * from '../apdu/apdu.ts';
export * from '../apdu/errors.ts';
export * from '../apdu/transport.ts';
export { SENV_AID } from '../apdu/profile.ts';
