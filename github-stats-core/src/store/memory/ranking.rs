//! The repositories in the order of `top_repositories`: most events first, ties by name. The
//! answer to `top_repositories(limit)` is the first `limit` of them, however many tie at the
//! cut-off, so a request costs O(limit), and an update O(log n).
//!
//! Names live in the store's arena, not here: the order is kept by comparisons that look names
//! up by their place in the arena, after a comparison of the names' first eight bytes kept in
//! each slot, which settles most of them without reading the arena. Slots sit in blocks of at most
//! [`BLOCK`], found by binary search over the blocks' first slots and then within a block, so
//! that an update moves a few KiB at most. A full block passes a slot to a neighbour with room
//! before it splits, which keeps blocks about 80% full: about 20 bytes per repository (a
//! `BTreeSet` of totals and owned names, the obvious alternative, costs 40 and more).

use std::cmp::Ordering;

/// Most slots in a block: 8 KiB, of which an insertion moves half on average.
const BLOCK: usize = 512;

/// One repository in the ranking. 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    /// The name's first eight bytes, big-endian, zero-padded.
    prefix: u64,
    /// The repository's event count.
    pub(super) total: u32,
    /// Where the name is: what the `name` arguments of [`Ranking`] look it up by.
    pub(super) name: u32,
}

impl Slot {
    /// The slot of the repository `name`, found again by `name_ref`.
    pub(super) fn new(total: u32, name: &[u8], name_ref: u32) -> Slot {
        let mut prefix = [0u8; 8];
        let n = name.len().min(8);
        prefix[..n].copy_from_slice(&name[..n]);
        Slot {
            prefix: u64::from_be_bytes(prefix),
            total,
            name: name_ref,
        }
    }
}

/// Most events first, then names in byte order. A shorter name that is a prefix of another
/// sorts first both by padded prefix (zero is the least byte) and by full name.
fn order<'a>(a: &Slot, b: &Slot, name: &impl Fn(u32) -> &'a [u8]) -> Ordering {
    b.total
        .cmp(&a.total)
        .then(a.prefix.cmp(&b.prefix))
        .then_with(|| {
            if a.name == b.name {
                Ordering::Equal
            } else {
                name(a.name).cmp(name(b.name))
            }
        })
}

struct Block {
    /// `slots[0]`, kept here so that finding a block reads one array.
    first: Slot,
    /// Sorted; capacity [`BLOCK`], never more.
    slots: Vec<Slot>,
}

/// See the [module documentation](self). `name` arguments give a repository's name by the
/// reference its slot holds; names must not change while a repository is ranked.
#[derive(Default)]
pub(super) struct Ranking {
    blocks: Vec<Block>,
}

impl Ranking {
    /// The block `slot` belongs in: the last whose first slot is not after it.
    fn block_of<'a>(&self, slot: &Slot, name: &impl Fn(u32) -> &'a [u8]) -> usize {
        self.blocks
            .partition_point(|b| order(&b.first, slot, name) != Ordering::Greater)
            .saturating_sub(1)
    }

    /// Adds `slot` (not already in the ranking).
    pub(super) fn insert<'a>(&mut self, slot: Slot, name: &impl Fn(u32) -> &'a [u8]) {
        if self.blocks.is_empty() {
            let mut slots = Vec::with_capacity(BLOCK);
            slots.push(slot);
            self.blocks.push(Block { first: slot, slots });
            return;
        }
        let mut b = self.block_of(&slot, name);
        let Err(mut pos) = self.blocks[b]
            .slots
            .binary_search_by(|s| order(s, &slot, name))
        else {
            debug_assert!(false, "slot {slot:?} ranked twice");
            return;
        };
        if self.blocks[b].slots.len() == BLOCK {
            let last = b + 1 == self.blocks.len();
            if b > 0 && self.blocks[b - 1].slots.len() < BLOCK && pos > 0 {
                // The left neighbour takes this block's first slot (a push).
                let moved = self.blocks[b].slots.remove(0);
                self.blocks[b - 1].slots.push(moved);
                pos -= 1;
            } else if !last && self.blocks[b + 1].slots.len() < BLOCK {
                // The right neighbour takes this block's last slot, or the new one when it
                // comes after them all.
                let right_of_all = pos == BLOCK;
                let moved = if right_of_all {
                    slot
                } else {
                    self.blocks[b].slots.pop().expect("a full block")
                };
                let right = &mut self.blocks[b + 1];
                right.slots.insert(0, moved);
                right.first = moved;
                if right_of_all {
                    return;
                }
            } else if last && pos == BLOCK {
                // Appending at the very end (names arriving in order): a new block, so that
                // the full one stays full.
                let mut slots = Vec::with_capacity(BLOCK);
                slots.push(slot);
                self.blocks.push(Block { first: slot, slots });
                return;
            } else {
                let mut tail = Vec::with_capacity(BLOCK);
                tail.extend(self.blocks[b].slots.drain(BLOCK / 2..));
                self.blocks.insert(
                    b + 1,
                    Block {
                        first: tail[0],
                        slots: tail,
                    },
                );
                if pos > BLOCK / 2 {
                    b += 1;
                    pos -= BLOCK / 2;
                }
            }
        }
        let block = &mut self.blocks[b];
        block.slots.insert(pos, slot);
        block.first = block.slots[0];
    }

    /// Takes `slot` out; whether it was there.
    pub(super) fn remove<'a>(&mut self, slot: Slot, name: &impl Fn(u32) -> &'a [u8]) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        let b = self.block_of(&slot, name);
        let block = &mut self.blocks[b];
        let Ok(pos) = block.slots.binary_search_by(|s| order(s, &slot, name)) else {
            return false;
        };
        block.slots.remove(pos);
        if block.slots.is_empty() {
            self.blocks.remove(b);
            return true;
        }
        block.first = block.slots[0];
        // A block that ran low joins its smaller neighbour when both fit in one, so that
        // blocks stay a quarter full on average whatever the removals.
        if block.slots.len() < BLOCK / 4 {
            let neighbours = [
                b.checked_sub(1),
                Some(b + 1).filter(|&r| r < self.blocks.len()),
            ];
            let smaller = neighbours
                .into_iter()
                .flatten()
                .min_by_key(|&n| self.blocks[n].slots.len());
            if let Some(n) = smaller
                && self.blocks[n].slots.len() + self.blocks[b].slots.len() <= BLOCK
            {
                let (left, right) = (b.min(n), b.max(n));
                let moved = self.blocks.remove(right);
                self.blocks[left].slots.extend_from_slice(&moved.slots);
            }
        }
        true
    }

    /// Every slot, in ranking order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Slot> + '_ {
        self.blocks.iter().flat_map(|b| b.slots.iter().copied())
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.blocks.capacity() * std::mem::size_of::<Block>()
            + self
                .blocks
                .iter()
                .map(|b| b.slots.capacity() * std::mem::size_of::<Slot>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the ranking against a brute-force sort after every operation.
    struct Model {
        names: Vec<String>,
        totals: Vec<u32>,
        ranking: Ranking,
    }

    impl Model {
        fn set(&mut self, entry: u32, total: u32) {
            let names = &self.names;
            let name = |i: u32| names[i as usize].as_bytes();
            let old = self.totals[entry as usize];
            if old > 0 {
                assert!(
                    self.ranking
                        .remove(Slot::new(old, name(entry), entry), &name)
                );
            }
            self.ranking
                .insert(Slot::new(total, name(entry), entry), &name);
            self.totals[entry as usize] = total;
        }

        fn check(&self) {
            let mut expected: Vec<(u32, &str)> = self
                .totals
                .iter()
                .zip(&self.names)
                .filter(|(t, _)| **t > 0)
                .map(|(t, n)| (*t, n.as_str()))
                .collect();
            expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
            let got: Vec<(u32, &str)> = self
                .ranking
                .iter()
                .map(|s| (s.total, self.names[s.name as usize].as_str()))
                .collect();
            assert_eq!(got, expected);
            for block in &self.ranking.blocks {
                assert_eq!(block.first, block.slots[0]);
                assert!(block.slots.len() <= BLOCK);
            }
        }
    }

    #[test]
    fn the_order_is_most_events_first_then_names_whatever_the_updates() {
        let mut rng = fastrand::Rng::with_seed(15);
        // Names sharing prefixes of every length, and names that are prefixes of others.
        let stems = [
            "",
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefgh\0",
            "abc\0d",
            "b",
            "zz",
            "a\u{e9}",
            "\u{7f}",
        ];
        let names: Vec<String> = (0..30_000)
            .map(|i| format!("{}{}", stems[i % stems.len()], rng.u32(0..3_000)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let n = names.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        rng.shuffle(&mut order);
        let mut model = Model {
            names,
            totals: vec![0; n],
            ranking: Ranking::default(),
        };
        // Everyone ties first (one big group to split blocks in), then totals move both ways.
        for &entry in &order {
            model.set(entry, 1);
        }
        model.check();
        for round in 0..60_000 {
            let entry = rng.u32(0..n as u32);
            let total = match rng.u8(0..4) {
                0 => 1,
                1 => model.totals[entry as usize] + 1,
                _ => rng.u32(1..6),
            };
            if total != model.totals[entry as usize] {
                model.set(entry, total);
            }
            if round % 10_000 == 0 {
                model.check();
            }
        }
        model.check();
    }

    #[test]
    fn blocks_merge_as_slots_leave() {
        let names: Vec<String> = (0..10_000).map(|i| format!("r/{i:05}")).collect();
        let name = |i: u32| names[i as usize].as_bytes();
        let mut ranking = Ranking::default();
        for i in 0..10_000u32 {
            ranking.insert(Slot::new(1, name(i), i), &name);
        }
        // Names arriving in order fill every block.
        assert_eq!(ranking.blocks.len(), 10_000_usize.div_ceil(BLOCK));
        for i in (0..10_000u32).filter(|i| i % 10 != 0) {
            assert!(ranking.remove(Slot::new(1, name(i), i), &name));
        }
        assert!(!ranking.remove(Slot::new(1, name(1), 1), &name));
        assert_eq!(ranking.iter().count(), 1_000);
        assert!(
            ranking.blocks.len() * BLOCK / 4 <= 1_000,
            "{} blocks for 1,000 slots",
            ranking.blocks.len()
        );
    }
}
