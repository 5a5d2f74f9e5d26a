use super::*;
use bytes::Bytes;

fn call<'a>(path: &'a str, query: &'a str, body: &'a Bytes) -> Call<'a> {
    Call {
        path,
        query,
        content_type: "application/json",
        body,
    }
}

#[test]
fn every_listed_path_is_answered_and_no_other() {
    let mut d = Directory::default();
    let empty = Bytes::new();
    for p in PATHS {
        assert!(d.answer(&call(p, "", &empty)).is_some(), "{p}");
    }
    assert!(d.answer(&call("/cgi-bin/user/nope", "", &empty)).is_none());
}

#[test]
fn deleting_a_department_with_members_or_children_is_refused() {
    let mut d = Directory::default();
    let body = Bytes::from_static(br#"{"name":"Ops","parentid":2}"#);
    let a = d.answer(&call("/cgi-bin/department/create", "", &body));
    assert!(a.is_some());
    assert!(d.departments.contains_key(&4));
    assert!(d
        .departments
        .values()
        .any(|x| x.name == "Ops" && x.parentid == 2));
    // 2 has a child now (and members); 4 has neither.
    d.answer(&call("/cgi-bin/department/delete", "id=2", &empty()));
    assert!(d.departments.contains_key(&2));
    d.answer(&call("/cgi-bin/department/delete", "id=4", &empty()));
    assert!(!d.departments.contains_key(&4));
}

fn empty() -> Bytes {
    Bytes::new()
}
