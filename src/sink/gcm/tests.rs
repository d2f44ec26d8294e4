use super::*;

#[test]
fn the_window_is_25_hours_back_and_5_minutes_ahead() {
    let now = Utc::now();
    let h = |x: i64| chrono::Duration::hours(x);
    let m = |x: i64| chrono::Duration::minutes(x);
    let table = [
        (now, true),
        (now - h(24), true),
        (now - h(25), true),
        (now - h(25) - chrono::Duration::seconds(1), false),
        (now - h(30), false),
        (now + m(5), true),
        (now + m(5) + chrono::Duration::seconds(1), false),
        (now + h(2), false),
    ];
    for (t, ok) in table {
        assert_eq!(in_window(t, now), ok, "{}", now.signed_duration_since(t));
    }
}
