// `gate sim --backoffice memory`: the lanes' lists read straight from the simulated back office's book of
// registrations (simulator/registered.ts: one word per rider), not copied into a map entry per credential,
// so a day of a million riders costs the lanes a few MB of lists. A credential has one registration on
// file: blocked is one of them, so the allowlist and the denylist never disagree about a key.

import type { Allowlist, BindingStatus, Denylist, ListProvider, ListSnapshot } from '../lists/list-provider.js';
import type { RegisteredCredentials } from '../../simulator/registered.js';

export class BookAllowlist implements Allowlist {
  constructor(private readonly book: RegisteredCredentials) {}
  lookup(key: string): BindingStatus | undefined {
    const r = this.book.lookup(key);
    return r === 'green' || r === 'yellow' || r === 'red' ? r : undefined;
  }
  set(key: string, status: BindingStatus): void {
    this.book.set(key, status);
  }
  delete(key: string): void {
    if (this.lookup(key) !== undefined) this.book.set(key, 'unregistered');
  }
  get size(): number {
    return this.book.allowedCount;
  }
}

export class BookDenylist implements Denylist {
  constructor(private readonly book: RegisteredCredentials) {}
  isBlocked(key: string): boolean {
    return this.book.lookup(key) === 'blocked';
  }
  block(key: string): void {
    this.book.set(key, 'blocked');
  }
  unblock(key: string): void {
    if (this.isBlocked(key)) this.book.set(key, 'unregistered');
  }
}

/** One fixed version of the lists, whatever the book holds now (changes reach every lane at once). */
export class BookLists implements ListProvider, ListSnapshot {
  readonly allowlist: BookAllowlist;
  readonly denylist: BookDenylist;
  readonly version = 1;
  constructor(readonly book: RegisteredCredentials, readonly publishedAtMs: number) {
    this.allowlist = new BookAllowlist(book);
    this.denylist = new BookDenylist(book);
  }
  current(): ListSnapshot {
    return this;
  }
}
