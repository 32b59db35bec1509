//! The duplicate check of the cluster order: which jobs repeat an ID seen
//! earlier in that order.
//!
//! # Implementation notes
//!
//! The check is a hash table of the jobs kept so far. An entry is 8 bytes:
//! the job's number (its place among all the parts' jobs, see
//! [`JobNumbers`]) and the 32-bit hash of its ID that the scan took. A
//! probe compares the stored hash first, so a job's ID bytes and entry are
//! read only when two full hashes are equal (a duplicate, or a collision),
//! and a probe touches no memory but the table.
//!
//! Large lists are checked in lanes (see [`Lane`]): the ID hashes are split
//! into disjoint ranges, one per thread, and each thread walks the whole
//! cluster order but checks only the jobs whose hash falls in its range.
//! Two jobs with one ID have one hash, so they meet in the same lane, in
//! cluster order: each lane finds exactly the duplicates of its own IDs. The
//! walk is repeated per lane (it reads job entries in order and is cheap);
//! the probes, the expensive part, are split.

use hashbrown::hash_table::{Entry, HashTable};

use super::{Part, Slot};
use crate::aggregate::body::spread_hash;

/// The jobs kept so far in one lane, by ID hash.
pub(super) struct Check<'p, 'a> {
    parts: &'p [Part<'a>],
    numbers: &'p JobNumbers,
    /// `(job number, ID hash)` of each kept job.
    table: HashTable<(u32, u32)>,
}

/// One thread's share of the ID hashes: lane `index` of `of` takes the
/// hashes `h` with `h * of / 2^32 == index`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lane {
    pub(super) index: u32,
    pub(super) of: u32,
}

/// Every job of the parts numbered 0, 1, ... in part, page and job order:
/// a job is then 4 bytes in the check's table instead of a 12-byte slot.
pub(super) struct JobNumbers {
    /// The number of the first job of each page, part by part.
    starts: Vec<Vec<u32>>,
    /// `(first job number, part, page)` of every page, by number.
    pages: Vec<(u32, u32, u32)>,
}

// === impl Check ===

impl<'p, 'a> Check<'p, 'a> {
    /// An empty check with room for `capacity` jobs.
    pub(super) fn new(parts: &'p [Part<'a>], numbers: &'p JobNumbers, capacity: usize) -> Self {
        Check {
            parts,
            numbers,
            table: HashTable::with_capacity(capacity),
        }
    }

    /// Whether the job at `slot`, whose ID hash is `hash`, is the first
    /// with its ID (it is then remembered).
    pub(super) fn first(&mut self, slot: Slot, hash: u32) -> bool {
        let (parts, numbers) = (self.parts, self.numbers);
        let same = |&(number, kept): &(u32, u32)| {
            kept == hash && id_bytes(parts, numbers.slot(number)) == id_bytes(parts, slot)
        };
        match self
            .table
            .entry(spread_hash(hash), same, |&(_, kept)| spread_hash(kept))
        {
            Entry::Vacant(place) => {
                place.insert((numbers.number(slot), hash));
                true
            }
            Entry::Occupied(_) => false,
        }
    }
}

fn id_bytes<'a>(parts: &[Part<'a>], slot: Slot) -> &'a [u8] {
    parts[slot.part as usize].pages[slot.page as usize].id_bytes(slot.job as usize)
}

// === impl Lane ===

impl Lane {
    /// Whether `hash` is this lane's.
    pub(super) fn takes(self, hash: u32) -> bool {
        self.of == 1 || ((u64::from(hash) * u64::from(self.of)) >> 32) as u32 == self.index
    }
}

// === impl JobNumbers ===

impl JobNumbers {
    /// Numbers the jobs of `parts`, which hold fewer than 2^32 jobs in all
    /// (each job costs an entry of 40 bytes, so memory runs out first).
    pub(super) fn new(parts: &[Part<'_>]) -> JobNumbers {
        let mut next = 0u32;
        let mut pages = Vec::new();
        let starts = parts
            .iter()
            .enumerate()
            .map(|(part, p)| {
                p.pages
                    .iter()
                    .enumerate()
                    .map(|(page, jobs)| {
                        let start = next;
                        pages.push((start, part as u32, page as u32));
                        next = next.saturating_add(jobs.jobs.len() as u32);
                        start
                    })
                    .collect()
            })
            .collect();
        JobNumbers { starts, pages }
    }

    /// The number of the job at `slot`.
    fn number(&self, slot: Slot) -> u32 {
        self.starts[slot.part as usize][slot.page as usize] + slot.job
    }

    /// The slot of job `number` (only read when two full hashes are equal).
    fn slot(&self, number: u32) -> Slot {
        // The last page starting at or before it.
        let at = self
            .pages
            .partition_point(|&(start, _, _)| start <= number)
            .saturating_sub(1);
        let (start, part, page) = self.pages[at];
        Slot {
            part,
            page,
            job: number - start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_split_every_hash_exactly_once() {
        for of in 1..=5u32 {
            for hash in [0, 1, 7, u32::MAX / 3, u32::MAX / 2, u32::MAX - 1, u32::MAX] {
                let taking = (0..of).filter(|&index| Lane { index, of }.takes(hash));
                assert_eq!(taking.count(), 1, "hash {hash} in {of} lanes");
            }
        }
    }
}
