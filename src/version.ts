// senv's version, for what reports it at run time ([deviceInfo]'s softwareVersion): a constant,
// since browsers and bundles have no package.json to read. A test holds it equal to package.json's.
export const SENV_VERSION = '0.1.0';
