//! Checks of identity numbers and phone numbers as issued in China: GB 11643
//! resident IDs, GB 32100 unified social credit codes, mobile and fixed-line phones.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("resident id must be 18 characters (17 digits and a digit or X), got {0}")]
    IdLength(usize),
    #[error("resident id has a character that is not allowed at position {0}")]
    IdCharacter(usize),
    #[error("resident id birth date {0} is not a real date")]
    IdBirthDate(String),
    #[error("resident id check digit is wrong: expected {expected}, found {found}")]
    IdCheckDigit { expected: char, found: char },
    #[error("unified social credit code must be 18 characters, got {0}")]
    CreditLength(usize),
    #[error("unified social credit code has a character that is not allowed at position {0}")]
    CreditCharacter(usize),
    #[error(
        "unified social credit code check character is wrong: expected {expected}, found {found}"
    )]
    CreditCheck { expected: char, found: char },
    #[error(
        "phone number must be an 11-digit mobile number starting with 1, or a fixed line like 0755-12345678"
    )]
    Phone,
}

/// GB 11643 weights for the first 17 digits (2^(18-i) mod 11).
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// GB 11643 check characters indexed by the weighted sum mod 11.
const ID_CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// The check character GB 11643 gives the first 17 digits, if they are digits.
pub fn resident_id_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17
        .bytes()
        .zip(ID_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    Some(ID_CHECK[(sum % 11) as usize])
}

/// Checks an 18-character resident ID: digits, a real birth date and the check digit.
/// Lower-case `x` is accepted and normalised by [`normalize_resident_id`].
pub fn check_resident_id(id: &str) -> Result<(), ValidationError> {
    let id = normalize_resident_id(id);
    let chars: Vec<char> = id.chars().collect();
    if chars.len() != 18 {
        return Err(ValidationError::IdLength(chars.len()));
    }
    if let Some(pos) = chars[..17].iter().position(|c| !c.is_ascii_digit()) {
        return Err(ValidationError::IdCharacter(pos + 1));
    }
    if !(chars[17].is_ascii_digit() || chars[17] == 'X') {
        return Err(ValidationError::IdCharacter(18));
    }
    let birth = &id[6..14];
    if !is_real_date(birth) {
        return Err(ValidationError::IdBirthDate(birth.to_owned()));
    }
    // Invariant: the first 17 characters were just checked to be ASCII digits.
    let expected = resident_id_check_char(&id[..17]).expect("17 digits");
    if expected != chars[17] {
        return Err(ValidationError::IdCheckDigit {
            expected,
            found: chars[17],
        });
    }
    Ok(())
}

pub fn normalize_resident_id(id: &str) -> String {
    id.trim().to_ascii_uppercase()
}

fn is_real_date(yyyymmdd: &str) -> bool {
    let num = |r: std::ops::Range<usize>| yyyymmdd[r].parse::<u32>().ok();
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(4..6), num(6..8)) else {
        return false;
    };
    let Ok(month) = time::Month::try_from(m as u8) else {
        return false;
    };
    (1900..=2100).contains(&y) && time::Date::from_calendar_date(y as i32, month, d as u8).is_ok()
}

/// GB 32100 alphabet: digits and capital letters without I, O, S, V, Z.
const CREDIT_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// GB 32100 weights: 3^(i) mod 31 for positions 1..=17.
const CREDIT_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

fn credit_value(c: u8) -> Option<u32> {
    CREDIT_ALPHABET
        .iter()
        .position(|&a| a == c)
        .map(|p| p as u32)
}

/// The check character GB 32100 gives the first 17 characters, if they are in its alphabet.
pub fn credit_code_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (b, w) in first17.bytes().zip(CREDIT_WEIGHTS) {
        sum += credit_value(b)? * w;
    }
    let check = (31 - sum % 31) % 31;
    Some(CREDIT_ALPHABET[check as usize] as char)
}

/// Checks an 18-character unified social credit code and its check character.
pub fn check_credit_code(code: &str) -> Result<(), ValidationError> {
    let code = code.trim().to_ascii_uppercase();
    let bytes = code.as_bytes();
    if code.chars().count() != 18 || bytes.len() != 18 {
        return Err(ValidationError::CreditLength(code.chars().count()));
    }
    if let Some(pos) = bytes.iter().position(|&b| credit_value(b).is_none()) {
        return Err(ValidationError::CreditCharacter(pos + 1));
    }
    // Invariant: every character was just checked to be in the alphabet.
    let expected = credit_code_check_char(&code[..17]).expect("alphabet checked");
    let found = bytes[17] as char;
    if expected != found {
        return Err(ValidationError::CreditCheck { expected, found });
    }
    Ok(())
}

/// Accepts an 11-digit mobile number (1[3-9]…) or a fixed line `0AA(A)-NNNNNNN(N)`,
/// with an optional +86 prefix; spaces and dashes inside a mobile number are ignored.
pub fn check_phone(phone: &str) -> Result<(), ValidationError> {
    let p = phone.trim();
    let p = p.strip_prefix("+86").unwrap_or(p).trim();
    let digits: String = p.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let mobile = digits.len() == 11
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.starts_with('1')
        && matches!(digits.as_bytes()[1], b'3'..=b'9');
    let fixed = match p.split_once('-') {
        Some((area, local)) => {
            (3..=4).contains(&area.len())
                && area.starts_with('0')
                && area.bytes().all(|b| b.is_ascii_digit())
                && (7..=8).contains(&local.len())
                && local.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    };
    if mobile || fixed {
        Ok(())
    } else {
        Err(ValidationError::Phone)
    }
}

/// Masks an ID number for display: the first 6 and last 4 characters stay.
pub fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..6].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 10));
    out.extend(&chars[chars.len() - 4..]);
    out
}

/// Masks a phone number for display: the first 3 and last 4 digits stay.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..3].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 7));
    out.extend(&chars[chars.len() - 4..]);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Builds a valid ID from 17 digits by appending the GB 11643 check character.
    fn with_check(first17: &str) -> String {
        format!("{first17}{}", resident_id_check_char(first17).unwrap())
    }

    #[test]
    fn resident_ids() {
        // The standard's worked example: 11010519491231002 has check character X.
        assert_eq!(resident_id_check_char("11010519491231002"), Some('X'));
        assert_eq!(check_resident_id("11010519491231002X"), Ok(()));
        assert_eq!(check_resident_id("11010519491231002x"), Ok(()));
        assert_eq!(
            check_resident_id("110105194912310021"),
            Err(ValidationError::IdCheckDigit {
                expected: 'X',
                found: '1'
            })
        );
        assert_eq!(
            check_resident_id("1101051949123100"),
            Err(ValidationError::IdLength(16))
        );
        assert_eq!(
            check_resident_id("11010519491331002X"),
            Err(ValidationError::IdBirthDate("19491331".into()))
        );
        assert_eq!(
            check_resident_id("1101A519491231002X"),
            Err(ValidationError::IdCharacter(5))
        );
        assert_eq!(
            check_resident_id("440399199002300012"),
            Err(ValidationError::IdBirthDate("19900230".into()))
        );
    }

    #[test]
    fn credit_codes() {
        // 91350100M000100Y43 is the code printed in GB 32100's own example.
        assert_eq!(check_credit_code("91350100M000100Y43"), Ok(()));
        assert_eq!(
            check_credit_code("91350100M000100Y44"),
            Err(ValidationError::CreditCheck {
                expected: '3',
                found: '4'
            })
        );
        assert_eq!(
            check_credit_code("91350100M000100Y4"),
            Err(ValidationError::CreditLength(17))
        );
        assert_eq!(
            check_credit_code("91350100M000I00Y43"),
            Err(ValidationError::CreditCharacter(13))
        );
    }

    #[test]
    fn phones() {
        for ok in [
            "13800138000",
            "+86 139 0013 8000",
            "0755-12345678",
            "010-1234567",
        ] {
            assert_eq!(check_phone(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "12800138000",
            "1380013800",
            "abc",
            "0755-12",
            "755-12345678",
            "138001380001",
        ] {
            assert_eq!(check_phone(bad), Err(ValidationError::Phone), "{bad}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(mask_id("44039919900101123X"), "440399********123X");
        assert_eq!(mask_phone("13800138000"), "138****8000");
        assert_eq!(mask_id("123"), "***");
    }

    proptest! {
        #[test]
        fn every_single_digit_change_is_caught(first17 in "[1-6][0-9]{5}19[5-9][0-9](0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}", pos in 0usize..17, delta in 1u8..10) {
            let id = with_check(&first17);
            prop_assert_eq!(check_resident_id(&id), Ok(()));
            let mut bytes = id.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            // A changed digit either breaks the birth date or the check digit; never passes.
            prop_assert!(check_resident_id(&changed).is_err());
        }

        #[test]
        fn validators_never_panic(s in "\\PC{0,40}") {
            let _ = check_resident_id(&s);
            let _ = check_credit_code(&s);
            let _ = check_phone(&s);
            let _ = mask_id(&s);
        }
    }
}
