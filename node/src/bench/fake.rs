//! Made-up applicants for benchmarks, demos and tests: plausible names, resident
//! IDs with correct check digits, mobile numbers. No real person is described.

use yichuang_shared::case::{ApplicantKind, Party};
use yichuang_shared::validate::resident_id_check_char;

use crate::store::CreateCase;

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高",
];
const GIVEN: &[&str] = &[
    "子涵", "欣怡", "浩然", "梓萱", "宇轩", "雨桐", "俊杰", "思远", "嘉怡", "明轩", "佳琪", "文博",
    "婉清", "志强", "秀英", "建华", "丽娟", "晓东", "海燕", "国庆",
];

/// A small deterministic generator (splitmix64), so a seed reproduces a data set, and
/// a schedule of the district simulator (`yichuang_tests::sim`).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }

    pub fn per_mille(&mut self, p: u32) -> bool {
        self.below(1000) < u64::from(p)
    }

    pub fn bytes16(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        out[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        out
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        let i = self.below(items.len() as u64) as usize;
        items.get(i)
    }
}

/// A resident ID for someone born in 1950–2004 in the made-up district 440399.
pub fn resident_id(rng: &mut Rng) -> String {
    let year = 1950 + rng.below(55);
    let month = 1 + rng.below(12);
    let day = 1 + rng.below(28);
    let serial = rng.below(1000);
    let first17 = format!("440399{year:04}{month:02}{day:02}{serial:03}");
    // Invariant: first17 is 17 ASCII digits by construction.
    let check = resident_id_check_char(&first17).expect("17 digits");
    format!("{first17}{check}")
}

pub fn name(rng: &mut Rng) -> String {
    format!(
        "{}{}",
        SURNAMES[rng.below(SURNAMES.len() as u64) as usize],
        GIVEN[rng.below(GIVEN.len() as u64) as usize]
    )
}

pub fn phone(rng: &mut Rng) -> String {
    format!("13{}{:08}", 5 + rng.below(5), rng.below(100_000_000))
}

/// A case request for a random item of `items`.
pub fn case_request(rng: &mut Rng, items: &[String], clerk: &str) -> CreateCase {
    CreateCase {
        item: items[rng.below(items.len() as u64) as usize].clone(),
        applicant_kind: ApplicantKind::NaturalPerson,
        applicant: Party {
            name: name(rng),
            id_no: resident_id(rng),
            phone: phone(rng),
            address: String::new(),
        },
        agent: None,
        materials_received: Vec::new(),
        delivery_method: None,
        delivery_address: String::new(),
        clerk: clerk.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_ids_and_phones_validate() {
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            assert_eq!(
                yichuang_shared::validate::check_resident_id(&resident_id(&mut rng)),
                Ok(())
            );
            assert_eq!(
                yichuang_shared::validate::check_phone(&phone(&mut rng)),
                Ok(())
            );
        }
    }
}
