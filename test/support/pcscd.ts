// Tests use the simulator's private pcscd launcher (the same one `gate sim --reader pcsc` uses).
export * from '../../simulator/pcscd.js';
