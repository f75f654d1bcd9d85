//! Copy-on-write containers for [`Snapshot`](super::Snapshot)'s maps, so that
//! a write copies only the pieces it touches, never a whole list.
//!
//! Each container is an `Arc`'d list of `Arc`'d chunks (or shards). Cloning
//! one costs one reference-count increment; the first change after a clone
//! copies the outer list (one pointer per chunk: about n / 512 of them) and
//! the chunk it changes (at most [`CHUNK`] items), so a write costs
//! O(changed * (CHUNK + n / CHUNK)) instead of O(n), and every untouched
//! chunk stays shared with the previous snapshot.
//!
//! - [`KeyedVec`]: a vector indexed by a dense `u32` key (key -> entry).
//! - [`SortedChunks`]: items kept sorted by a caller's order (answer order),
//!   with binary-search insert and remove.
//! - [`ShardedMap`]: a string-keyed hash map split into shards by hash.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

/// Most items in a chunk. Unit tests use tiny chunks, so that splitting,
/// merging and sharing are exercised by small data.
pub const CHUNK: usize = if cfg!(test) { 8 } else { 1024 };

/// A vector indexed by `u32` keys in chunks of [`CHUNK`].
#[derive(Clone)]
pub struct KeyedVec<T> {
    chunks: Arc<Vec<Arc<Vec<T>>>>,
    len: usize,
}

impl<T> Default for KeyedVec<T> {
    fn default() -> Self {
        Self { chunks: Arc::default(), len: 0 }
    }
}

impl<T: Clone> KeyedVec<T> {
    /// The items of `items` at keys 0, 1, ...
    pub fn from_items(items: impl IntoIterator<Item = T>) -> Self {
        let mut chunks = Vec::new();
        let mut len = 0;
        let mut chunk = Vec::with_capacity(CHUNK);
        for item in items {
            chunk.push(item);
            len += 1;
            if chunk.len() == CHUNK {
                chunks.push(Arc::new(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))));
            }
        }
        if !chunk.is_empty() {
            chunks.push(Arc::new(chunk));
        }
        Self { chunks: Arc::new(chunks), len }
    }

    /// Number of keys.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The item at `key`.
    #[inline]
    pub fn get(&self, key: u32) -> Option<&T> {
        let key = key as usize;
        self.chunks.get(key / CHUNK)?.get(key % CHUNK)
    }

    /// Replaces the item at `key` (copying its chunk if shared); false when
    /// `key` is out of range.
    pub fn set(&mut self, key: u32, item: T) -> bool {
        let key = key as usize;
        if key >= self.len {
            return false;
        }
        let chunks = Arc::make_mut(&mut self.chunks);
        match chunks.get_mut(key / CHUNK).and_then(|c| Arc::make_mut(c).get_mut(key % CHUNK)) {
            Some(slot) => {
                *slot = item;
                true
            }
            None => false,
        }
    }

    /// Appends an item at key `len()`.
    pub fn push(&mut self, item: T) {
        let chunks = Arc::make_mut(&mut self.chunks);
        match chunks.last_mut() {
            Some(last) if last.len() < CHUNK => Arc::make_mut(last).push(item),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(item);
                chunks.push(Arc::new(chunk));
            }
        }
        self.len += 1;
    }

    /// Every item in key order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }
}

/// Items kept sorted by an order the caller passes to every call (it must be
/// the same each time and total over the items held), in chunks of at most
/// [`CHUNK`].
#[derive(Clone)]
pub struct SortedChunks<T> {
    chunks: Arc<Vec<Arc<Vec<T>>>>,
    len: usize,
}

impl<T> Default for SortedChunks<T> {
    fn default() -> Self {
        Self { chunks: Arc::default(), len: 0 }
    }
}

impl<T: Clone> SortedChunks<T> {
    /// From items already in order; chunks are half full, so inserts do
    /// not split at once.
    pub fn from_sorted(items: Vec<T>) -> Self {
        let len = items.len();
        let half = (CHUNK / 2).max(1);
        let mut chunks = Vec::with_capacity(len.div_ceil(half));
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            chunks.push(Arc::new(items.by_ref().take(half).collect()));
        }
        Self { chunks: Arc::new(chunks), len }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no item.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every item in order.
    pub fn iter(&self) -> SortedIter<'_, T> {
        SortedIter { chunks: self.chunks.iter(), current: [].iter(), remaining: self.len }
    }

    /// The chunk `item` belongs in, and its place there: `Ok` where an equal
    /// item is, `Err` where it would be inserted.
    fn find(&self, item: &T, cmp: &impl Fn(&T, &T) -> Ordering) -> (usize, Result<usize, usize>) {
        // The first chunk whose last item is not before `item`.
        let c = self.chunks.partition_point(|chunk| chunk.last().is_some_and(|last| cmp(last, item).is_lt()));
        let c = c.min(self.chunks.len().saturating_sub(1));
        let at = match self.chunks.get(c) {
            Some(chunk) => chunk.binary_search_by(|x| cmp(x, item)),
            None => Err(0),
        };
        (c, at)
    }

    /// Inserts `item` at its place (before equal items).
    pub fn insert(&mut self, item: T, cmp: &impl Fn(&T, &T) -> Ordering) {
        let (c, at) = self.find(&item, cmp);
        let at = match at {
            Ok(i) | Err(i) => i,
        };
        let chunks = Arc::make_mut(&mut self.chunks);
        match chunks.get_mut(c) {
            None => chunks.push(Arc::new(vec![item])),
            Some(chunk) => {
                let chunk = Arc::make_mut(chunk);
                chunk.insert(at, item);
                if chunk.len() > CHUNK {
                    let tail = chunk.split_off(chunk.len() / 2);
                    chunks.insert(c + 1, Arc::new(tail));
                }
            }
        }
        self.len += 1;
    }

    /// Removes the item equal to `item` under `cmp` whose identity `same`
    /// confirms; false when there is none.
    pub fn remove(&mut self, item: &T, cmp: &impl Fn(&T, &T) -> Ordering, same: impl Fn(&T) -> bool) -> bool {
        let (c, Ok(at)) = self.find(item, cmp) else { return false };
        if !self.chunks.get(c).and_then(|chunk| chunk.get(at)).is_some_and(&same) {
            return false;
        }
        let chunks = Arc::make_mut(&mut self.chunks);
        let Some(chunk) = chunks.get_mut(c) else { return false };
        let chunk = Arc::make_mut(chunk);
        chunk.remove(at);
        let left = chunk.len();
        self.len -= 1;
        if left == 0 {
            chunks.remove(c);
        } else if left < CHUNK / 4 {
            // Merge a small chunk into a neighbour with room for it.
            let fits = |i: usize| chunks.get(i).is_some_and(|n| n.len() + left <= CHUNK / 2);
            let into = if c > 0 && fits(c - 1) {
                Some(c - 1)
            } else if fits(c + 1) {
                Some(c)
            } else {
                None
            };
            if let Some(i) = into {
                let next = chunks.remove(i + 1);
                let first = Arc::make_mut(&mut chunks[i]);
                first.extend(next.iter().cloned());
            }
        }
        true
    }

    /// Replaces the item equal to `old` under `cmp` (and confirmed by
    /// `same`) by `new`, which must compare equal to it too; false when
    /// `old` is not there.
    pub fn replace(&mut self, old: &T, new: T, cmp: &impl Fn(&T, &T) -> Ordering, same: impl Fn(&T) -> bool) -> bool {
        debug_assert!(cmp(old, &new).is_eq());
        let (c, Ok(at)) = self.find(old, cmp) else { return false };
        if !self.chunks.get(c).and_then(|chunk| chunk.get(at)).is_some_and(&same) {
            return false;
        }
        let chunks = Arc::make_mut(&mut self.chunks);
        match chunks.get_mut(c).and_then(|chunk| Arc::make_mut(chunk).get_mut(at)) {
            Some(slot) => {
                *slot = new;
                true
            }
            None => false,
        }
    }

    /// How many chunks are the same allocation in `self` and `other` (for tests).
    #[cfg(test)]
    pub fn shared_chunks(&self, other: &Self) -> usize {
        self.chunks.iter().filter(|c| other.chunks.iter().any(|o| Arc::ptr_eq(c, o))).count()
    }

    /// Number of chunks (for tests).
    #[cfg(test)]
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
}

/// The items of a [`SortedChunks`] in order.
pub struct SortedIter<'a, T> {
    chunks: std::slice::Iter<'a, Arc<Vec<T>>>,
    current: std::slice::Iter<'a, T>,
    remaining: usize,
}

impl<'a, T> Iterator for SortedIter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(item) = self.current.next() {
                self.remaining = self.remaining.saturating_sub(1);
                return Some(item);
            }
            self.current = self.chunks.next()?.iter();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T> ExactSizeIterator for SortedIter<'_, T> {}

/// Shards of a [`ShardedMap`] are sized for about this many entries.
const SHARD: usize = if cfg!(test) { 4 } else { 512 };

/// A hash map from strings, split by hash into a power-of-two number of
/// shards; a change copies one shard. The shard count grows (one O(n)
/// rebuild) when shards average four times their intended size.
#[derive(Clone)]
pub struct ShardedMap<V> {
    shards: Arc<Vec<Arc<HashMap<String, V>>>>,
    len: usize,
}

impl<V> Default for ShardedMap<V> {
    fn default() -> Self {
        Self { shards: Arc::new(vec![Arc::default()]), len: 0 }
    }
}

/// The shard of `key` among `shards` (a power of two). A fixed hash, so the
/// same key always lands in the same shard.
#[inline]
fn shard_of(key: &str, shards: usize) -> usize {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) & (shards - 1)
}

impl<V: Clone> ShardedMap<V> {
    /// A map of `items` (later duplicates win), with shards sized for it.
    pub fn from_entries(items: impl IntoIterator<Item = (String, V)>) -> Self {
        let items: Vec<(String, V)> = items.into_iter().collect();
        let count = (items.len() / SHARD).max(1).next_power_of_two();
        let mut shards: Vec<HashMap<String, V>> =
            (0..count).map(|_| HashMap::with_capacity(items.len() / count + 1)).collect();
        for (k, v) in items {
            shards[shard_of(&k, count)].insert(k, v);
        }
        let len = shards.iter().map(HashMap::len).sum();
        Self { shards: Arc::new(shards.into_iter().map(Arc::new).collect()), len }
    }

    /// Number of entries.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&V> {
        self.shards.get(shard_of(key, self.shards.len()))?.get(key)
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: String, value: V) {
        let n = self.shards.len();
        let shards = Arc::make_mut(&mut self.shards);
        let Some(shard) = shards.get_mut(shard_of(&key, n)) else { return };
        if Arc::make_mut(shard).insert(key, value).is_none() {
            self.len += 1;
        }
        if self.len > self.shards.len() * SHARD * 4 {
            *self = Self::from_entries(self.shards.iter().flat_map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone()))));
        }
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        let n = self.shards.len();
        let i = shard_of(key, n);
        if !self.shards.get(i).is_some_and(|s| s.contains_key(key)) {
            return;
        }
        let shards = Arc::make_mut(&mut self.shards);
        if let Some(shard) = shards.get_mut(i) {
            if Arc::make_mut(shard).remove(key).is_some() {
                self.len -= 1;
            }
        }
    }

    /// Number of shards (for tests).
    #[cfg(test)]
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn sorted_chunks_match_a_sorted_vec_and_share_untouched_chunks() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let cmp = |a: &u32, b: &u32| a.cmp(b);
        let mut model: Vec<u32> = (0..300).map(|i| i * 4).collect();
        let mut s = SortedChunks::from_sorted(model.clone());
        for step in 0..3000 {
            let before = s.clone();
            if rng.gen_bool(0.5) || model.is_empty() {
                let v = rng.gen_range(0..1500);
                if model.binary_search(&v).is_err() {
                    s.insert(v, &cmp);
                    let at = model.partition_point(|&x| x < v);
                    model.insert(at, v);
                }
            } else {
                let v = model.remove(rng.gen_range(0..model.len()));
                assert!(s.remove(&v, &cmp, |&x| x == v), "step {step}");
                assert!(!s.remove(&v, &cmp, |&x| x == v), "removed twice, step {step}");
            }
            if let Some(&v) = model.get(rng.gen_range(0..model.len().max(1))) {
                assert!(s.replace(&v, v, &cmp, |&x| x == v), "step {step}");
            }
            assert_eq!(s.len(), model.len(), "step {step}");
            assert_eq!(s.iter().len(), model.len(), "step {step}");
            assert_eq!(s.iter().copied().collect::<Vec<_>>(), model, "step {step}");
            // A change copies at most a few chunks; the rest stay shared.
            assert!(s.shared_chunks(&before) + 3 >= before.chunk_count(), "step {step}");
            assert!(s.iter().count() <= s.chunk_count() * CHUNK);
        }
        while let Some(v) = model.pop() {
            assert!(s.remove(&v, &cmp, |&x| x == v));
        }
        assert!(s.is_empty() && s.chunk_count() == 0);
        s.insert(3, &cmp);
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn keyed_vec_sets_and_pushes() {
        let mut v = KeyedVec::from_items(0..20u32);
        let before = v.clone();
        assert!(v.set(9, 90));
        assert!(!v.set(20, 1));
        v.push(20);
        assert_eq!(v.len(), 21);
        assert_eq!(v.get(9), Some(&90));
        assert_eq!(before.get(9), Some(&9));
        assert_eq!(v.get(20), Some(&20));
        assert_eq!(v.get(21), None);
        assert_eq!(v.iter().copied().filter(|&x| x != 90).count(), 20);
    }

    #[test]
    fn sharded_map_grows_its_shards() {
        let mut m = ShardedMap::from_entries((0..10).map(|i| (format!("k{i}"), i)));
        let before = m.clone();
        for i in 0..1000 {
            m.insert(format!("k{i}"), i * 2);
        }
        assert_eq!(m.len(), 1000);
        assert!(m.shard_count() >= 1000 / (SHARD * 4));
        m.remove("k5");
        m.remove("absent");
        assert_eq!(m.len(), 999);
        assert_eq!(m.get("k5"), None);
        assert_eq!(m.get("k6"), Some(&12));
        assert_eq!(before.get("k6"), Some(&6));
        assert_eq!(before.len(), 10);
    }
}
