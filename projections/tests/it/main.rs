//! The projection stores' contract, run against SQLite and against DynamoDB (moto's server,
//! `TICKCAST_TEST_DYNAMODB=http://HOST:PORT`, started by `scripts/test.sh`).

mod suite;

use std::sync::Arc;

use tickcast_projections::ProjectionStore;

mod embedded {
    use super::*;

    fn fresh() -> (tempfile::TempDir, Arc<dyn ProjectionStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(tickcast_projections::embedded::EmbeddedStore::open(dir.path()).unwrap());
        (dir, store)
    }

    #[tokio::test]
    async fn a_recorded_game_is_projected_once_however_often_it_is_applied() {
        suite::a_recorded_game_is_projected_once_however_often_it_is_applied(fresh().1).await;
    }

    #[tokio::test]
    async fn events_out_of_order_never_take_an_item_backwards() {
        suite::events_out_of_order_never_take_an_item_backwards(fresh().1).await;
    }

    #[tokio::test]
    async fn items_expire_a_ttl_after_their_session_ends() {
        let (_dir, store) = fresh();
        suite::items_expire_a_ttl_after_their_session_ends(Arc::clone(&store)).await;
        // SQLite deletes expired rows itself, when told the time.
        assert!(store.expire(i64::MAX / 2).await.unwrap() > 0);
        assert!(store.session("s-1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_rebuild_serves_the_old_items_until_it_switches() {
        let (dir, store) = fresh();
        let reader = Arc::new(tickcast_projections::embedded::EmbeddedStore::open(dir.path()).unwrap());
        suite::a_rebuild_serves_the_old_items_until_it_switches(store, reader, std::time::Duration::ZERO)
            .await;
    }

    #[tokio::test]
    async fn sessions_are_listed_newest_first_and_connections_by_session() {
        suite::sessions_are_listed_newest_first_and_connections_by_session(fresh().1).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_projectors_racing_end_where_one_would() {
        let ((_a, racing), (_b, alone)) = (fresh(), fresh());
        suite::two_projectors_racing_end_where_one_would(racing, alone).await;
    }
}

mod dynamodb {
    use super::*;

    async fn fresh() -> Arc<dyn ProjectionStore> {
        fresh_at().await.1
    }

    /// A store under a new prefix, its tables made, and its URL (to open it again).
    async fn fresh_at() -> (String, Arc<dyn ProjectionStore>) {
        let endpoint = std::env::var("TICKCAST_TEST_DYNAMODB").unwrap_or_else(|_| {
            panic!("set TICKCAST_TEST_DYNAMODB (a DynamoDB endpoint, e.g. moto's server) or run ./scripts/test.sh, which provides it")
        });
        let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
        let url = format!("dynamodb://{prefix}?region=us-east-1&endpoint={endpoint}");
        let store = tickcast_projections::open(&url).await.unwrap();
        store.create_tables().await.unwrap();
        (url, store)
    }

    /// The other process follows the switch within the pointer's refresh (2 s).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rebuild_serves_the_old_items_until_it_switches() {
        let (url, store) = fresh_at().await;
        let reader = tickcast_projections::open(&url).await.unwrap();
        suite::a_rebuild_serves_the_old_items_until_it_switches(
            store,
            reader,
            std::time::Duration::from_secs(2),
        )
        .await;
    }

    #[tokio::test]
    async fn a_recorded_game_is_projected_once_however_often_it_is_applied() {
        suite::a_recorded_game_is_projected_once_however_often_it_is_applied(fresh().await).await;
    }

    #[tokio::test]
    async fn events_out_of_order_never_take_an_item_backwards() {
        suite::events_out_of_order_never_take_an_item_backwards(fresh().await).await;
    }

    #[tokio::test]
    async fn items_expire_a_ttl_after_their_session_ends() {
        suite::items_expire_a_ttl_after_their_session_ends(fresh().await).await;
    }

    #[tokio::test]
    async fn sessions_are_listed_newest_first_and_connections_by_session() {
        suite::sessions_are_listed_newest_first_and_connections_by_session(fresh().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_projectors_racing_end_where_one_would() {
        suite::two_projectors_racing_end_where_one_would(fresh().await, fresh().await).await;
    }

    #[tokio::test]
    async fn creating_the_tables_twice_is_harmless() {
        let store = fresh().await;
        store.create_tables().await.unwrap();
        assert!(store.expiry_enabled().await.unwrap());
    }
}

#[tokio::test]
async fn bad_store_urls_say_what_to_use() {
    for (url, mention) in [
        ("postgres://x", "embedded://DIR or dynamodb://"),
        ("dynamodb://", "PREFIX"),
        ("dynamodb://p?colour=red", "region=R"),
        ("embedded://", "embedded://DIR"),
    ] {
        let error = tickcast_projections::open(url).await.unwrap_err().to_string();
        assert!(error.contains(mention), "{url}: {error}");
    }
}
