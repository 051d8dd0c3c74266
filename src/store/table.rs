//! A bounded table of packed cache entries: 16-byte keys, one boxed byte string each, CLOCK eviction.
//!
//! The decision cache keeps up to 100,000 standings and as many sessions; at that size the
//! table's own bookkeeping is a large part of the memory. Here an entry costs 32 bytes of table
//! (its key, and a pointer and length to its bytes) at most three quarters full, plus a bit for
//! CLOCK, and its bytes are one allocation without a reference count.
//!
//! The table is split into shards, each behind its own lock, so that threads rarely wait on
//! each other. Each shard is an open-addressing table with linear probing and backward-shift
//! deletion (no tombstones), holding at most its share of the bound. When a shard is full, the
//! CLOCK hand passes over the entries, sparing once each one read since it last passed, and
//! evicts the first one that was not. Keys are mixed with a per-process seed before use, so
//! that their spread does not depend on how they were made.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// A packed entry's key.
pub type Key = [u8; 16];

/// Most shards a table is split into (a power of two).
const MAX_SHARDS: usize = 16;

/// Fewest entries per shard before a table is split further: small tables stay one shard, so
/// that their bound is not divided into slivers.
const MIN_SHARD_ENTRIES: usize = 256;

/// A table of at most `max` entries (see the module's documentation).
pub struct PackedTable {
    shards: Box<[Mutex<Shard>]>,
    seed: (u64, u64),
}

struct Shard {
    /// The key of each occupied slot (anything in an empty one).
    keys: Vec<Key>,
    /// The bytes of each slot; `None` marks it empty.
    values: Vec<Option<Box<[u8]>>>,
    /// One bit per slot: read since the CLOCK hand last passed.
    referenced: Vec<u64>,
    len: usize,
    cap: usize,
    hand: usize,
}

impl PackedTable {
    /// A table that holds at most `max` entries. Its slots are allocated now and never again:
    /// the keys are zeroed by the system (their pages become resident as entries arrive), the
    /// empty boxes are written here (16 bytes per slot, resident from the start).
    pub fn new(max: usize) -> Self {
        let mut shards = 1;
        while shards < MAX_SHARDS && max / (shards * 2) >= MIN_SHARD_ENTRIES {
            shards *= 2;
        }
        let shards = (0..shards)
            .map(|i| {
                let cap = max / shards + usize::from(i < max % shards);
                Mutex::new(Shard::new(cap))
            })
            .collect();
        Self {
            shards,
            seed: (rand::random(), rand::random()),
        }
    }

    /// The key, mixed: the low bits choose the shard, the high bits the first slot.
    fn mix(&self, key: &Key) -> u64 {
        mixed(self.seed, key)
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        // The length is a power of two, at most 16: the cast cannot lose what the mask keeps.
        let index = (hash as usize) & (self.shards.len() - 1);
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `read` with the bytes kept under `key`, if any, and marks them as read.
    pub fn read<R>(&self, key: &Key, read: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let hash = self.mix(key);
        let mut shard = self.shard(hash);
        let slot = shard.find(hash, key)?;
        shard.mark(slot);
        shard.values[slot].as_deref().map(read)
    }

    /// Keeps `value` under `key`, in place of what was kept there; when the table is full,
    /// evicts an entry not read lately.
    pub fn insert(&self, key: Key, value: Box<[u8]>) {
        let hash = self.mix(&key);
        let mut shard = self.shard(hash);
        if let Some(slot) = shard.find(hash, &key) {
            shard.values[slot] = Some(value);
            return;
        }
        if shard.cap == 0 {
            return;
        }
        if shard.len >= shard.cap {
            let seed = self.seed;
            shard.evict_one(|k| mixed(seed, k));
        }
        let slot = shard.free_slot(hash);
        shard.keys[slot] = key;
        shard.values[slot] = Some(value);
        shard.unmark(slot);
        shard.len += 1;
    }

    /// Replaces what is kept under `key` only if something is, without marking it as read.
    /// Returns whether it did.
    pub fn replace(&self, key: &Key, value: Box<[u8]>) -> bool {
        let hash = self.mix(key);
        let mut shard = self.shard(hash);
        match shard.find(hash, key) {
            Some(slot) => {
                shard.values[slot] = Some(value);
                true
            }
            None => false,
        }
    }

    /// Forgets what is kept under `key`.
    pub fn remove(&self, key: &Key) {
        let hash = self.mix(key);
        let mut shard = self.shard(hash);
        if let Some(slot) = shard.find(hash, key) {
            let seed = self.seed;
            shard.remove_at(slot, |k| mixed(seed, k));
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.values.iter_mut().for_each(|value| *value = None);
            shard.referenced.iter_mut().for_each(|bits| *bits = 0);
            shard.len = 0;
            shard.hand = 0;
        }
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len)
            .sum()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key and the seed mixed into one word, every input bit reaching every output bit
/// (multiply-xorshift rounds).
fn mixed(seed: (u64, u64), key: &Key) -> u64 {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&key[..8]);
    hi.copy_from_slice(&key[8..]);
    let (lo, hi) = (
        u64::from_le_bytes(lo) ^ seed.0,
        u64::from_le_bytes(hi) ^ seed.1,
    );
    let mut x = lo.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hi.rotate_left(32);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Shard {
    fn new(cap: usize) -> Self {
        // At most three quarters full, and always one empty slot to end a probe.
        let slots = cap + cap / 3 + 1;
        Self {
            keys: vec![[0u8; 16]; slots],
            values: vec![None; slots],
            referenced: vec![0u64; slots.div_ceil(64)],
            len: 0,
            cap,
            hand: 0,
        }
    }

    /// The slot a hash starts probing at: its high bits scaled to the number of slots.
    fn home(&self, hash: u64) -> usize {
        let slots = self.values.len() as u128;
        // The product's high half is below the slot count, which fits a usize.
        ((u128::from(hash) * slots) >> 64) as usize
    }

    fn next(&self, slot: usize) -> usize {
        if slot + 1 == self.values.len() {
            0
        } else {
            slot + 1
        }
    }

    fn find(&self, hash: u64, key: &Key) -> Option<usize> {
        let mut slot = self.home(hash);
        loop {
            self.values[slot].as_ref()?;
            if self.keys[slot] == *key {
                return Some(slot);
            }
            slot = self.next(slot);
        }
    }

    fn free_slot(&self, hash: u64) -> usize {
        let mut slot = self.home(hash);
        while self.values[slot].is_some() {
            slot = self.next(slot);
        }
        slot
    }

    fn is_marked(&self, slot: usize) -> bool {
        self.referenced[slot / 64] & (1 << (slot % 64)) != 0
    }

    fn mark(&mut self, slot: usize) {
        self.referenced[slot / 64] |= 1 << (slot % 64);
    }

    fn unmark(&mut self, slot: usize) {
        self.referenced[slot / 64] &= !(1 << (slot % 64));
    }

    /// Empties `slot`, moving later entries of its probe run back so that every entry stays
    /// reachable from its home slot without tombstones.
    fn remove_at(&mut self, mut slot: usize, hash_of: impl Fn(&Key) -> u64) {
        self.values[slot] = None;
        self.unmark(slot);
        self.len -= 1;
        let mut next = self.next(slot);
        while self.values[next].is_some() {
            let home = self.home(hash_of(&self.keys[next]));
            // `next` may move to `slot` only if its home is not in the cyclic range (slot, next].
            let stays = if slot <= next {
                slot < home && home <= next
            } else {
                slot < home || home <= next
            };
            if !stays {
                self.keys[slot] = self.keys[next];
                self.values[slot] = self.values[next].take();
                if self.is_marked(next) {
                    self.mark(slot);
                }
                self.unmark(next);
                slot = next;
            }
            next = self.next(next);
        }
    }

    /// Evicts one entry (the shard holds at least one): the first the hand finds that was not
    /// read since it last passed, sparing and unmarking the others on its way.
    fn evict_one(&mut self, hash_of: impl Fn(&Key) -> u64) {
        // Two turns find one: the first unmarks every entry it passes.
        for _ in 0..2 * self.values.len() {
            let slot = self.hand;
            self.hand = self.next(slot);
            if self.values[slot].is_none() {
                continue;
            }
            if self.is_marked(slot) {
                self.unmark(slot);
            } else {
                self.remove_at(slot, hash_of);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn key(n: u64) -> Key {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&n.to_le_bytes());
        key
    }

    fn value(n: u64) -> Box<[u8]> {
        n.to_le_bytes().to_vec().into_boxed_slice()
    }

    fn read(table: &PackedTable, n: u64) -> Option<Vec<u8>> {
        table.read(&key(n), <[u8]>::to_vec)
    }

    #[test]
    fn keeps_replaces_and_forgets() {
        let table = PackedTable::new(100);
        assert!(table.is_empty());
        table.insert(key(1), value(1));
        table.insert(key(2), value(2));
        assert_eq!(read(&table, 1), Some(1u64.to_le_bytes().to_vec()));
        table.insert(key(1), value(11));
        assert_eq!(read(&table, 1), Some(11u64.to_le_bytes().to_vec()));
        assert_eq!(table.len(), 2);
        assert!(table.replace(&key(2), value(22)));
        assert!(!table.replace(&key(3), value(3)), "only what is kept");
        assert_eq!(read(&table, 3), None);
        assert_eq!(read(&table, 2), Some(22u64.to_le_bytes().to_vec()));
        table.remove(&key(1));
        assert_eq!(read(&table, 1), None);
        assert_eq!(table.len(), 1);
        table.clear();
        assert_eq!((table.len(), read(&table, 2)), (0, None));
    }

    /// Many inserts and removals in a random order agree with a map at every step: backward
    /// shifts never lose an entry, and the bound holds.
    #[test]
    fn agrees_with_a_map_under_churn() {
        for max in [1, 7, 300, 5_000] {
            let table = PackedTable::new(max);
            let mut model: HashMap<u64, u64> = HashMap::new();
            for step in 0..40_000u64 {
                let n = rand::random::<u64>() % (max as u64 * 2 + 3);
                if rand::random::<u8>().is_multiple_of(4) {
                    table.remove(&key(n));
                    model.remove(&n);
                } else {
                    table.insert(key(n), value(step));
                    model.insert(n, step);
                }
                assert!(table.len() <= max, "{} kept of at most {max}", table.len());
            }
            // Whatever the table kept is what the map has (evictions aside).
            let mut kept = 0;
            for (n, step) in &model {
                if let Some(bytes) = read(&table, *n) {
                    assert_eq!(bytes, step.to_le_bytes().to_vec(), "key {n}");
                    kept += 1;
                }
            }
            assert_eq!(kept, table.len(), "every entry reachable (max {max})");
        }
    }

    #[test]
    fn the_entries_read_lately_outlive_the_others() {
        let table = PackedTable::new(100);
        for n in 0..100 {
            table.insert(key(n), value(n));
        }
        // Ten people keep coming back while a hundred newcomers pass through once.
        for round in 0..100 {
            for n in 0..10 {
                assert!(read(&table, n).is_some(), "{n} evicted in round {round}");
            }
            table.insert(key(1_000 + round), value(round));
        }
        assert_eq!(table.len(), 100);
    }

    #[test]
    fn a_table_without_room_keeps_nothing() {
        let table = PackedTable::new(0);
        table.insert(key(1), value(1));
        assert_eq!((table.len(), read(&table, 1)), (0, None));
    }
}
