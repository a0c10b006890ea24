// Test support: real pty pairs via socat (the implementation lives in simulator/, which `gate sim
// --barrier pty` also uses). Fails loudly when socat is missing.
export { ptyPair, requireSocat, type PtyPair } from '../../simulator/pty-pair.js';
