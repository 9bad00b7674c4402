//! An external sort for the reading phase: entries pushed in any order come back sorted by key, equal
//! keys in the order they were pushed, while memory holds at most about `budget` bytes of them. Past
//! the budget, sorted runs go to unnamed temporary files (under `TMPDIR`, gone when dropped) and are
//! merged on the way out; a run that fits never touches the disk.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Entries waiting to be sorted: keys decoded (they are compared), values encoded (they are only
/// carried, and their encoded size is what the budget counts).
pub(super) struct Spill<K, V> {
    buffer: Vec<(K, Vec<u8>)>,
    buffered_bytes: usize,
    budget: usize,
    runs: Vec<File>,
    value: PhantomData<fn() -> V>,
}

/// What an entry costs in memory besides its encoded value: the key and the buffer's own slot.
const ENTRY_OVERHEAD: usize = 64;

impl<K, V> Spill<K, V>
where
    K: Ord + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    pub(super) fn new(budget: usize) -> Self {
        Self { buffer: Vec::new(), buffered_bytes: 0, budget, runs: Vec::new(), value: PhantomData }
    }

    pub(super) fn push(&mut self, key: K, value: &V) -> io::Result<()> {
        let value = serde_json::to_vec(value)?;
        self.buffered_bytes += value.len() + ENTRY_OVERHEAD;
        self.buffer.push((key, value));
        if self.buffered_bytes >= self.budget {
            self.write_run()?;
        }
        Ok(())
    }

    /// Sorts the buffer (stably: equal keys keep their order) and writes it to a new run file.
    fn write_run(&mut self) -> io::Result<()> {
        self.buffer.sort_by(|a, b| a.0.cmp(&b.0));
        let mut file = BufWriter::new(tempfile::tempfile()?);
        for (key, value) in self.buffer.drain(..) {
            write_frame(&mut file, &serde_json::to_vec(&key)?)?;
            write_frame(&mut file, &value)?;
        }
        let mut file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.rewind()?;
        self.runs.push(file);
        self.buffered_bytes = 0;
        Ok(())
    }

    /// Every entry pushed, sorted by key.
    pub(super) fn sorted(mut self) -> io::Result<Sorted<K, V>> {
        if self.runs.is_empty() {
            self.buffer.sort_by(|a, b| a.0.cmp(&b.0));
            return Ok(Sorted { source: Source::Memory(self.buffer.into_iter()), value: PhantomData });
        }
        if !self.buffer.is_empty() {
            self.write_run()?;
        }
        let mut runs: Vec<BufReader<File>> = self.runs.into_iter().map(BufReader::new).collect();
        let mut heads = BinaryHeap::with_capacity(runs.len());
        for (run, reader) in runs.iter_mut().enumerate() {
            if let Some((key, value)) = read_entry(reader)? {
                heads.push(Reverse(Head { key, run, value }));
            }
        }
        Ok(Sorted { source: Source::Runs { runs, heads }, value: PhantomData })
    }
}

/// The smallest unread entry of one run; among equal keys, the earlier run's comes first, which keeps
/// the sort stable.
struct Head<K> {
    key: K,
    run: usize,
    value: Vec<u8>,
}

impl<K: Ord> Ord for Head<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key).then(self.run.cmp(&other.run))
    }
}

impl<K: Ord> PartialOrd for Head<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord> PartialEq for Head<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<K: Ord> Eq for Head<K> {}

enum Source<K> {
    Memory(std::vec::IntoIter<(K, Vec<u8>)>),
    Runs { runs: Vec<BufReader<File>>, heads: BinaryHeap<Reverse<Head<K>>> },
}

/// The entries of a [`Spill`], in order.
pub(super) struct Sorted<K, V> {
    source: Source<K>,
    value: PhantomData<fn() -> V>,
}

impl<K, V> Sorted<K, V>
where
    K: Ord + DeserializeOwned,
    V: DeserializeOwned,
{
    fn next_encoded(&mut self) -> io::Result<Option<(K, Vec<u8>)>> {
        match &mut self.source {
            Source::Memory(entries) => Ok(entries.next()),
            Source::Runs { runs, heads } => {
                let Some(Reverse(Head { key, run, value })) = heads.pop() else { return Ok(None) };
                if let Some((next_key, next_value)) = read_entry(&mut runs[run])? {
                    heads.push(Reverse(Head { key: next_key, run, value: next_value }));
                }
                Ok(Some((key, value)))
            }
        }
    }
}

impl<K, V> Iterator for Sorted<K, V>
where
    K: Ord + DeserializeOwned,
    V: DeserializeOwned,
{
    type Item = io::Result<(K, V)>;

    fn next(&mut self) -> Option<Self::Item> {
        let decoded = self.next_encoded().and_then(|entry| {
            entry.map(|(key, value)| Ok((key, serde_json::from_slice(&value)?))).transpose()
        });
        decoded.transpose()
    }
}

fn write_frame(file: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let length = u32::try_from(bytes.len()).map_err(|_| io::Error::other("an entry over 4 GiB"))?;
    file.write_all(&length.to_le_bytes())?;
    file.write_all(bytes)
}

/// The next frame of a run, `None` at its end.
fn read_frame(file: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut length = [0; 4];
    match file.read_exact(&mut length) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let mut bytes = vec![0; u32::from_le_bytes(length) as usize];
    file.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

fn read_entry<K: DeserializeOwned>(file: &mut impl Read) -> io::Result<Option<(K, Vec<u8>)>> {
    let Some(key) = read_frame(file)? else { return Ok(None) };
    let value = read_frame(file)?.ok_or_else(|| io::Error::other("a run file ends inside an entry"))?;
    Ok(Some((serde_json::from_slice(&key)?, value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(entries: &[(u32, &str)], budget: usize) -> Vec<(u32, String)> {
        let mut spill = Spill::new(budget);
        for (key, value) in entries {
            spill.push(*key, &(*value).to_owned()).unwrap();
        }
        spill.sorted().unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn sorts_by_key_keeping_the_order_of_equal_keys_in_memory_and_through_runs() {
        let entries: Vec<(u32, String)> = (0..500).map(|n| ((n * 7919) % 13, format!("v{n}"))).collect();
        let borrowed: Vec<(u32, &str)> = entries.iter().map(|(key, value)| (*key, value.as_str())).collect();
        let mut expected = entries.clone();
        expected.sort_by_key(|(key, _)| *key);
        assert_eq!(sorted(&borrowed, usize::MAX), expected, "in memory");
        assert_eq!(sorted(&borrowed, 200), expected, "through runs of a few entries each");
        assert_eq!(sorted(&borrowed, 1), expected, "one entry a run");
    }

    #[test]
    fn a_budget_spills_to_files_and_an_empty_spill_is_empty() {
        let mut spill = Spill::<u32, String>::new(100);
        for n in 0..10 {
            spill.push(n, &"x".repeat(50)).unwrap();
        }
        assert!(spill.runs.len() >= 5, "{} runs written", spill.runs.len());
        assert_eq!(spill.sorted().unwrap().count(), 10);
        assert_eq!(sorted(&[], 1).len(), 0);
    }
}
