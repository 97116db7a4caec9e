//! The reference data a node is seeded from: a well-formed district and catalog.

use yichuang_node::store::{catalog_file, district};
use yichuang_shared::validate::check_credit_code;

#[test]
fn the_catalog_is_large_well_formed_and_covers_the_named_items() {
    let catalog = catalog_file();
    assert!(catalog.items.len() >= 60, "{} items", catalog.items.len());
    let mut codes = std::collections::HashSet::new();
    for item in &catalog.items {
        assert_eq!(
            item.code.chars().count(),
            31,
            "{}: an implementation code is 31 characters",
            item.code
        );
        assert!(
            item.code.starts_with(&item.department_code),
            "{}: begins with the department's credit code",
            item.code
        );
        assert_eq!(
            check_credit_code(&item.department_code),
            Ok(()),
            "{}",
            item.department
        );
        assert!(
            codes.insert(item.code.clone()),
            "duplicate code {}",
            item.code
        );
        assert!(
            !item.materials.is_empty() && !item.delivery.is_empty(),
            "{}",
            item.name
        );
        assert!(
            item.delivery
                .iter()
                .all(|d| ["window", "post", "locker"].contains(&d.as_str())),
            "{}",
            item.name
        );
    }
    for named in [
        "增设电梯",
        "公共场所卫生许可",
        "企业开办",
        "刻章",
        "公益性岗位补贴",
        "专利资助",
    ] {
        assert!(
            catalog.items.iter().any(|i| i.name.contains(named)),
            "the catalog names {named}"
        );
    }
    let departments: std::collections::HashSet<_> =
        catalog.items.iter().map(|i| &i.department).collect();
    assert!(departments.len() >= 10, "{} departments", departments.len());
}

#[test]
fn the_district_has_thirteen_centers() {
    let d = district();
    assert_eq!(d.code, "440399");
    assert_eq!(d.centers.len(), 13);
    let codes: std::collections::HashSet<_> = d.centers.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes.len(), 13);
    assert!(
        d.centers
            .iter()
            .all(|c| c.street_code == format!("{}{}", d.code, c.code))
    );
}
