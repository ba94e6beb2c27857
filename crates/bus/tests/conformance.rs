//! The bus conformance suite: the behaviour every `Bus` implementation must show,
//! run here against the in-process bus (a NATS bus runs the same checks).

use std::sync::Arc;

use switchboard_bus::LocalBus;
use switchboard_core::{Bus, Frame, Outbox, OutboxLimits, Relay};

/// Two relays on one bus: a publish on either reaches subscribers on both, in
/// order, exactly once, honouring `except`, never echoed back to the origin twice.
fn check_two_nodes(a_bus: Arc<dyn Bus>, b_bus: Arc<dyn Bus>) {
    let a = Relay::new(a_bus, 8);
    let b = Relay::new(b_bus, 8);
    assert_ne!(a.node(), b.node());
    let (atx, mut arx) = Outbox::bounded(OutboxLimits::default());
    let (btx, mut brx) = Outbox::bounded(OutboxLimits::default());
    let ac = a.next_conn_id();
    let bc = b.next_conn_id();
    assert_ne!(ac, bc);
    let _sa = a.subscribe("t", ac, atx);
    let _sb = b.subscribe("t", bc, btx);
    for i in 0..100 {
        a.publish("t", Frame::text(format!("a{i}")), None)
            .1
            .unwrap();
    }
    b.publish("t", Frame::text("from b, not to a's sub"), Some(ac))
        .1
        .unwrap();
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    arx.try_recv_many(&mut got_a);
    brx.try_recv_many(&mut got_b);
    let want: Vec<Frame> = (0..100).map(|i| Frame::text(format!("a{i}"))).collect();
    assert_eq!(got_a, want, "origin node delivers once, in order");
    let mut want_b = want.clone();
    want_b.push(Frame::text("from b, not to a's sub"));
    assert_eq!(
        got_b, want_b,
        "other node gets every message once, in order"
    );
}

#[test]
fn local_cluster_conforms() {
    let cluster = LocalBus::cluster();
    check_two_nodes(LocalBus::join(&cluster), LocalBus::join(&cluster));
}

#[test]
fn a_single_node_forwards_nowhere_and_still_delivers_locally() {
    let relay = Relay::new(LocalBus::single(), 4);
    let (tx, mut rx) = Outbox::bounded(OutboxLimits::default());
    let _s = relay.subscribe("t", relay.next_conn_id(), tx);
    let (fan, bus) = relay.publish("t", Frame::text("x"), None);
    assert_eq!(fan.delivered, 1);
    assert!(bus.is_ok());
    let mut buf = Vec::new();
    assert_eq!(rx.try_recv_many(&mut buf), 1);
}
