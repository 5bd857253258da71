//! The books (帳簿, 法13条, 施行規則第12条; R-REC-4) and the other certified producers with
//! their inter-producer contracts (第23条; R-REC-7), on migration `0016_books.sql`.
//!
//! A book entry is written once and never changed: a correction
//! ([`Workflow::correct_entry`], migration `0019_book_corrections.sql`) is a new entry of
//! the same kind naming the entry it corrects (`corrects`) — always the entry then in force,
//! so an entry's corrections form one chain (a unique index on `corrects`: never two
//! corrections of one entry) and the entry in force is the one nothing corrects
//! (`corrected_by` is read, never stored). The reports' checks use the delivery in force. Each entry carries what 第12条 asks for that kind — the
//! counter-party's name and address *as they were on the day* (copied from the version in
//! force, so a later `kiban user update` does not rewrite the books), the date and the
//! items (tables and their columns) — and the references that tie it to the release, the
//! request and the contract. Kinds ([`BookKind`]):
//!
//! * `delivery` — data provided to a user (第12条1項一), written by
//!   [`record_delivery_in`] inside the transaction that marks the release approved, so
//!   that no approved release exists without its entry (R-REL-4), and at most one per
//!   release (a unique index);
//! * `onward` — a user's report of provision to another user (二);
//! * `user_erasure` — a user's report that the delivered data was erased (三; a Type I
//!   user at the end of the term, R-PSEUDO-2);
//! * `transfer_out` / `transfer_in` — medical data provided to / received from another
//!   certified producer under an inter-producer contract (四, 五; 法25条).
//!
//! Reports are refused when the books show no delivery of that release to that user,
//! when they are dated before the delivery or after today, or when they name items that
//! were not delivered. No personal data of patients is ever in a book entry: persons only
//! as a count.

use crate::store::shown_id as shown;
use std::collections::BTreeMap;

use chrono::NaiveDate;
use kiban_model::Table;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::WorkflowError;
use crate::refusal::{Field, WorkflowRefusal};
use crate::store::{
    Workflow, check_id, corrupt, date, latest_user, next_seq, not_future, recorded, recorded_row,
    text,
};
use crate::types::{Level, Recorded, Stamp, User};

type Result<T> = std::result::Result<T, WorkflowError>;

/// Items of information: table → columns (sorted; empty: the whole table).
pub type BookItems = BTreeMap<String, Vec<String>>;

/// What a book entry records (第12条1項 一〜五).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BookKind {
    Delivery,
    Onward,
    UserErasure,
    TransferOut,
    TransferIn,
}

impl BookKind {
    pub const ALL: [BookKind; 5] = [
        BookKind::Delivery,
        BookKind::Onward,
        BookKind::UserErasure,
        BookKind::TransferOut,
        BookKind::TransferIn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BookKind::Delivery => "delivery",
            BookKind::Onward => "onward",
            BookKind::UserErasure => "user_erasure",
            BookKind::TransferOut => "transfer_out",
            BookKind::TransferIn => "transfer_in",
        }
    }

    pub fn parse(s: &str) -> Option<BookKind> {
        BookKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The direction of an inter-producer transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// We provide medical data to the other producer.
    Out,
    /// We receive medical data from the other producer.
    In,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "out" => Some(Direction::Out),
            "in" => Some(Direction::In),
            _ => None,
        }
    }

    fn kind(self) -> BookKind {
        match self {
            Direction::Out => BookKind::TransferOut,
            Direction::In => BookKind::TransferIn,
        }
    }
}

/// One entry of the books, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookEntry {
    /// 1, 2, … in the order written.
    pub entry_no: i64,
    pub kind: BookKind,
    pub date: NaiveDate,
    /// `user` or `producer`.
    pub counterparty_kind: String,
    pub counterparty_id: String,
    /// The version of the user or producer whose name and address were copied.
    pub counterparty_version: i64,
    pub counterparty_name: String,
    pub counterparty_address: String,
    /// The receiving user of an onward provision.
    pub to_name: Option<String>,
    pub to_address: Option<String>,
    pub items: BookItems,
    pub release: Option<String>,
    pub request: Option<String>,
    pub contract: Option<String>,
    pub level: Option<Level>,
    pub persons: Option<u64>,
    /// The method of an inter-producer transfer.
    pub method: Option<String>,
    /// The entry this one corrects (the entry that was in force when it was written).
    pub corrects: Option<i64>,
    /// Why this entry corrects `corrects` (a correction only).
    pub correction_reason: Option<String>,
    /// The entry that corrects this one, if any: read from the books, never stored on
    /// this entry (which is never changed). An entry nothing corrects is in force.
    pub corrected_by: Option<i64>,
    pub recorded: Recorded,
}

/// A correction of a book entry ([`Workflow::correct_entry`]): the fields given replace the
/// entry in force's; the kind, the counter-party, the references and the persons are never
/// corrected (there is no field for them: a wrong counter-party is not a correction but a
/// new entry).
#[derive(Debug, Clone, Default)]
pub struct NewCorrection {
    pub date: Option<NaiveDate>,
    /// TABLE or TABLE.COLUMN (user reports: within what was delivered; transfers: within
    /// the contract). Given and empty is refused (`tables_empty`): an entry is never
    /// corrected into nothing.
    pub items: Option<Vec<String>>,
    /// The receiving user (onward reports only).
    pub to_name: Option<String>,
    pub to_address: Option<String>,
    /// The method (inter-producer transfers only).
    pub method: Option<String>,
    /// Why (required).
    pub reason: String,
}

/// The delivery entry of an approved release (see [`record_delivery_in`]).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub release: String,
    pub user: String,
    /// The user's version in force at the approval (its name and address are copied).
    pub user_version: i64,
    pub date: NaiveDate,
    pub items: BookItems,
    pub request: String,
    pub contract: String,
    pub level: Level,
    pub persons: u64,
}

/// A user's report of onward provision to another user.
#[derive(Debug, Clone)]
pub struct NewOnward {
    pub user: String,
    pub release: String,
    pub to_name: String,
    pub to_address: String,
    pub date: NaiveDate,
    /// TABLE or TABLE.COLUMN; within what was delivered.
    pub items: Vec<String>,
}

/// A user's report that delivered data was erased.
#[derive(Debug, Clone)]
pub struct NewUserErasure {
    pub user: String,
    pub release: String,
    pub date: NaiveDate,
    /// TABLE or TABLE.COLUMN; empty: everything delivered.
    pub items: Vec<String>,
}

/// Another certified producer (or, `own`, this producer itself).
#[derive(Debug, Clone)]
pub struct NewProducer {
    pub id: String,
    pub name: String,
    pub address: String,
    pub representative: String,
    pub cert_no: String,
    pub own: bool,
}

/// One version of a producer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Producer {
    pub id: String,
    pub version: i64,
    pub name: String,
    pub address: String,
    pub representative: String,
    pub cert_no: String,
    pub own: bool,
    pub recorded: Recorded,
}

/// An inter-producer contract to record (第23条).
#[derive(Debug, Clone)]
pub struct NewTransferContract {
    pub id: String,
    pub producer: String,
    pub direction: Direction,
    pub signed_on: NaiveDate,
    pub items: Vec<String>,
    pub method: String,
}

/// One party of an inter-producer contract as it was when recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Party {
    pub name: String,
    pub address: String,
    pub representative: String,
}

/// An inter-producer contract: both parties, the items and the method (第23条 一〜四).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferContract {
    pub id: String,
    pub producer: String,
    pub direction: Direction,
    pub signed_on: NaiveDate,
    pub provider: Party,
    pub recipient: Party,
    pub items: BookItems,
    pub method: String,
    pub recorded: Recorded,
}

/// A transfer of medical data to or from another producer.
#[derive(Debug, Clone)]
pub struct NewTransfer {
    pub producer: String,
    pub direction: Direction,
    pub date: NaiveDate,
    pub items: Vec<String>,
    /// The inter-producer contract's ID.
    pub contract: String,
}

/// Writes the delivery entry of a release in the caller's transaction (the approval's):
/// the user's name and address of `user_version`. Refused with `user_unknown` when that
/// version does not exist; a second delivery entry of one release fails the unique index
/// (a database error, so the caller's transaction rolls back).
pub async fn record_delivery_in(
    conn: &mut AnyConnection,
    d: &NewDelivery,
    st: &Stamp,
) -> Result<BookEntry> {
    let row = sqlx::query(&format!(
        "{} FROM workflow_users WHERE user_id = $1 AND version = $2",
        crate::store::USER_COLS
    ))
    .bind(&d.user)
    .bind(d.user_version)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(user) = row.as_ref().map(crate::store::user_row).transpose()? else {
        return Err(WorkflowRefusal::UserUnknown {
            user: d.user.clone(),
        }
        .into());
    };
    let entry = BookEntry {
        entry_no: 0,
        kind: BookKind::Delivery,
        date: d.date,
        counterparty_kind: "user".into(),
        counterparty_id: user.id.clone(),
        counterparty_version: user.version,
        counterparty_name: user.name,
        counterparty_address: user.address,
        to_name: None,
        to_address: None,
        items: d.items.clone(),
        release: Some(d.release.clone()),
        request: Some(d.request.clone()),
        contract: Some(d.contract.clone()),
        level: Some(d.level),
        persons: Some(d.persons),
        method: None,
        corrects: None,
        correction_reason: None,
        corrected_by: None,
        recorded: recorded(0, st),
    };
    insert_entry(conn, entry).await
}

impl Workflow {
    // Producers.

    /// Records another certified producer, or this producer's own record (`own`: at most
    /// one producer is).
    pub async fn add_producer(&self, p: NewProducer, st: &Stamp) -> Result<Producer> {
        check_id(&p.id, Field::ProducerId)?;
        let producer = Producer {
            id: p.id,
            version: 1,
            name: text(&p.name, Field::Name)?,
            address: text(&p.address, Field::Address)?,
            representative: text(&p.representative, Field::Representative)?,
            cert_no: text(&p.cert_no, Field::CertificationNumber)?,
            own: p.own,
            recorded: recorded(0, st),
        };
        let mut tx = self.db().pool().begin().await?;
        if latest_producer(&mut tx, &producer.id).await?.is_some() {
            return Err(WorkflowRefusal::ProducerExists {
                producer: producer.id,
            }
            .into());
        }
        if producer.own
            && let Some(o) = own_producer(&mut tx).await?
        {
            return Err(WorkflowRefusal::OwnProducerConflict { producer: o.id }.into());
        }
        let producer = insert_producer(&mut tx, producer).await?;
        tx.commit().await?;
        Ok(producer)
    }

    /// Every producer's current version, by ID.
    pub async fn producers(&self) -> Result<Vec<Producer>> {
        let mut conn = self.db().pool().acquire().await?;
        let rows = sqlx::query(&format!(
            "{PRODUCER_COLS} FROM producers p WHERE version = \
             (SELECT MAX(version) FROM producers q WHERE q.producer_id = p.producer_id) \
             ORDER BY producer_id"
        ))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(producer_row).collect()
    }

    /// Records an inter-producer contract (第23条): this producer's own record and the
    /// other producer's current version are copied as provider and recipient by direction.
    pub async fn add_transfer_contract(
        &self,
        c: NewTransferContract,
        st: &Stamp,
    ) -> Result<TransferContract> {
        check_id(&c.id, Field::ContractId)?;
        not_future(c.signed_on, st)?;
        let items = parse_items(&c.items, true)?;
        let method = text(&c.method, Field::Method)?;
        let mut tx = self.db().pool().begin().await?;
        if transfer_contract(&mut tx, &c.id).await?.is_some() {
            return Err(WorkflowRefusal::TransferContractExists { contract: c.id }.into());
        }
        let Some(other) = latest_producer(&mut tx, &c.producer).await? else {
            return Err(WorkflowRefusal::ProducerUnknown {
                producer: c.producer,
            }
            .into());
        };
        let Some(own) = own_producer(&mut tx).await? else {
            return Err(WorkflowRefusal::OwnProducerMissing.into());
        };
        if own.id == other.id {
            return Err(WorkflowRefusal::OwnProducerConflict { producer: own.id }.into());
        }
        let party = |p: &Producer| Party {
            name: p.name.clone(),
            address: p.address.clone(),
            representative: p.representative.clone(),
        };
        let (provider, recipient) = match c.direction {
            Direction::Out => (party(&own), party(&other)),
            Direction::In => (party(&other), party(&own)),
        };
        let seq = next_seq(&mut tx).await?;
        let contract = TransferContract {
            id: c.id,
            producer: other.id,
            direction: c.direction,
            signed_on: c.signed_on,
            provider,
            recipient,
            items,
            method,
            recorded: recorded(seq, st),
        };
        sqlx::query(
            "INSERT INTO transfer_contracts (contract_id, seq, producer_id, direction, signed_on, \
             provider_name, provider_address, provider_representative, recipient_name, \
             recipient_address, recipient_representative, items, method, recorded_at, recorded_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&contract.id)
        .bind(seq)
        .bind(&contract.producer)
        .bind(contract.direction.as_str())
        .bind(contract.signed_on.to_string())
        .bind(&contract.provider.name)
        .bind(&contract.provider.address)
        .bind(&contract.provider.representative)
        .bind(&contract.recipient.name)
        .bind(&contract.recipient.address)
        .bind(&contract.recipient.representative)
        .bind(items_json(&contract.items))
        .bind(&contract.method)
        .bind(&contract.recorded.at)
        .bind(&contract.recorded.by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(contract)
    }

    /// Every inter-producer contract, in the order recorded.
    pub async fn transfer_contracts(&self) -> Result<Vec<TransferContract>> {
        let mut conn = self.db().pool().acquire().await?;
        let rows = sqlx::query(&format!("{TC_COLS} FROM transfer_contracts ORDER BY seq"))
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(tc_row).collect()
    }

    /// A transfer of medical data to or from another producer under its contract: the
    /// book entry `transfer_out` or `transfer_in` with the producer's current name and
    /// address.
    pub async fn record_transfer(&self, t: NewTransfer, st: &Stamp) -> Result<BookEntry> {
        not_future(t.date, st)?;
        let items = parse_items(&t.items, true)?;
        let mut tx = self.db().pool().begin().await?;
        let Some(producer) = latest_producer(&mut tx, &t.producer).await? else {
            return Err(WorkflowRefusal::ProducerUnknown {
                producer: t.producer,
            }
            .into());
        };
        let Some(contract) = transfer_contract(&mut tx, &t.contract).await? else {
            return Err(WorkflowRefusal::TransferContractUnknown {
                contract: t.contract,
            }
            .into());
        };
        if contract.producer != producer.id || contract.direction != t.direction {
            return Err(WorkflowRefusal::TransferContractMismatch {
                contract: contract.id,
                producer: producer.id,
                direction: t.direction.as_str().into(),
            }
            .into());
        }
        if t.date < contract.signed_on {
            return Err(WorkflowRefusal::TransferBeforeContract {
                contract: contract.id,
                date: t.date,
                signed_on: contract.signed_on,
            }
            .into());
        }
        let beyond = items_beyond(&items, &contract.items);
        if !beyond.is_empty() {
            return Err(WorkflowRefusal::ItemsBeyond { items: beyond }.into());
        }
        let items = items_within(items, &contract.items);
        let entry = BookEntry {
            entry_no: 0,
            kind: t.direction.kind(),
            date: t.date,
            counterparty_kind: "producer".into(),
            counterparty_id: producer.id,
            counterparty_version: producer.version,
            counterparty_name: producer.name,
            counterparty_address: producer.address,
            to_name: None,
            to_address: None,
            items,
            release: None,
            request: None,
            contract: Some(contract.id),
            level: None,
            persons: None,
            method: Some(contract.method),
            corrects: None,
            correction_reason: None,
            corrected_by: None,
            recorded: recorded(0, st),
        };
        let entry = insert_entry(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(entry)
    }

    // Users' reports.

    /// A user's report of onward provision of delivered data to another user (第12条1項二):
    /// the providing user's current name and address, the receiving user's as reported.
    pub async fn report_onward(&self, r: NewOnward, st: &Stamp) -> Result<BookEntry> {
        not_future(r.date, st)?;
        let to_name = text(&r.to_name, Field::OnwardName)?;
        let to_address = text(&r.to_address, Field::OnwardAddress)?;
        let items = parse_items(&r.items, false)?;
        let mut tx = self.db().pool().begin().await?;
        let (user, delivery) = reported(&mut tx, &r.user, &r.release, r.date).await?;
        let beyond = items_beyond(&items, &delivery.items);
        if !beyond.is_empty() {
            return Err(WorkflowRefusal::ItemsBeyond { items: beyond }.into());
        }
        let items = items_within(items, &delivery.items);
        let entry = report_entry(
            BookKind::Onward,
            &user,
            &delivery,
            r.date,
            items,
            Some((to_name, to_address)),
            st,
        );
        let entry = insert_entry(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// A user's report that delivered data was erased (第12条1項三; the Type I user's duty
    /// at the end of the term): everything delivered when no items are given.
    pub async fn report_user_erasure(&self, r: NewUserErasure, st: &Stamp) -> Result<BookEntry> {
        not_future(r.date, st)?;
        let given = if r.items.iter().all(|i| i.trim().is_empty()) {
            None
        } else {
            Some(parse_items(&r.items, false)?)
        };
        let mut tx = self.db().pool().begin().await?;
        let (user, delivery) = reported(&mut tx, &r.user, &r.release, r.date).await?;
        let items = match given {
            Some(items) => {
                let beyond = items_beyond(&items, &delivery.items);
                if !beyond.is_empty() {
                    return Err(WorkflowRefusal::ItemsBeyond { items: beyond }.into());
                }
                items_within(items, &delivery.items)
            }
            None => delivery.items.clone(),
        };
        let entry = report_entry(
            BookKind::UserErasure,
            &user,
            &delivery,
            r.date,
            items,
            None,
            st,
        );
        let entry = insert_entry(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// The book entries dated in `[from, to]` (inclusive, either optional), of `kind` when
    /// given, by date then entry number.
    pub async fn books(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        kind: Option<BookKind>,
    ) -> Result<Vec<BookEntry>> {
        let mut conn = self.db().pool().acquire().await?;
        // Dates are stored YYYY-MM-DD, so text comparison is date order.
        let rows = sqlx::query(&format!(
            "{ENTRY_COLS} FROM book_entries WHERE ($1 = '' OR entry_date >= $1) \
             AND ($2 = '' OR entry_date <= $2) AND ($3 = '' OR kind = $3) \
             ORDER BY entry_date, entry_no"
        ))
        .bind(from.map(|d| d.to_string()).unwrap_or_default())
        .bind(to.map(|d| d.to_string()).unwrap_or_default())
        .bind(kind.map(|k| k.as_str()).unwrap_or_default())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(entry_row).collect()
    }

    /// Corrects a book entry (R-REC-4): writes a new entry of the same kind, a copy of the
    /// entry in force of `entry_no`'s chain (the entry itself, or its latest correction)
    /// with the fields given replaced, `corrects` naming that entry in force, the reason,
    /// the actor and the time. Nothing is changed or deleted: the corrected entry stays as
    /// it was written, and the books show it corrected by the new one.
    ///
    /// Refused: an empty reason (`field_empty`), an unknown entry (`book_entry_unknown`),
    /// a field the kind does not have (`correction_field_not_applicable`: `--to`/
    /// `--to-address` only on onward reports, `--method` only on transfers), a date after
    /// today (`date_in_future`), a report dated before the delivery in force
    /// (`report_before_delivery`) or a transfer before its contract
    /// (`transfer_before_contract`), no items (`tables_empty`), items beyond what was
    /// delivered or contracted (`items_beyond`), notes to a user (`table_not_releasable`),
    /// and a correction that changes nothing (`nothing_to_change`). The kind, the
    /// counter-party and the references cannot be corrected: [`NewCorrection`] has no field
    /// for them.
    pub async fn correct_entry(
        &self,
        entry_no: i64,
        c: NewCorrection,
        st: &Stamp,
    ) -> Result<BookEntry> {
        let reason = text(&c.reason, Field::CorrectionReason)?;
        let mut tx = self.db().pool().begin().await?;
        let Some(mut current) = entry_by_no(&mut tx, entry_no).await? else {
            return Err(WorkflowRefusal::BookEntryUnknown { entry: entry_no }.into());
        };
        // The entry in force of the chain: follow the corrections forward. Entry numbers
        // only grow, so the walk ends; a number that does not is a damaged table.
        while let Some(next) = current.corrected_by {
            let found = if next > current.entry_no {
                entry_by_no(&mut tx, next).await?
            } else {
                None
            };
            let Some(n) = found else {
                return Err(corrupt("book_entries", &next.to_string(), "corrects"));
            };
            current = n;
        }
        let kind = current.kind;
        let not_applicable = |field: Field| -> WorkflowError {
            WorkflowRefusal::CorrectionFieldNotApplicable {
                entry: entry_no,
                kind: kind.as_str().into(),
                field,
            }
            .into()
        };
        if kind != BookKind::Onward {
            if c.to_name.is_some() {
                return Err(not_applicable(Field::OnwardName));
            }
            if c.to_address.is_some() {
                return Err(not_applicable(Field::OnwardAddress));
            }
        }
        let transfer = matches!(kind, BookKind::TransferOut | BookKind::TransferIn);
        if !transfer && c.method.is_some() {
            return Err(not_applicable(Field::Method));
        }
        if let Some(d) = c.date {
            not_future(d, st)?;
        }
        let mut e = current.clone();
        e.entry_no = 0;
        e.corrects = Some(current.entry_no);
        e.correction_reason = Some(reason);
        e.corrected_by = None;
        e.recorded = recorded(0, st);
        if let Some(d) = c.date {
            e.date = d;
        }
        if let Some(n) = &c.to_name {
            e.to_name = Some(text(n, Field::OnwardName)?);
        }
        if let Some(a) = &c.to_address {
            e.to_address = Some(text(a, Field::OnwardAddress)?);
        }
        if let Some(m) = &c.method {
            e.method = Some(text(m, Field::Method)?);
        }
        let given = c
            .items
            .as_deref()
            .map(|v| parse_items(v, transfer))
            .transpose()?;
        match kind {
            BookKind::Delivery => {
                if let Some(items) = given {
                    e.items = items;
                }
            }
            BookKind::Onward | BookKind::UserErasure => {
                let release = e.release.clone().unwrap_or_default();
                let delivery = match delivery_of(&mut tx, &release).await? {
                    Some(d) if d.counterparty_id == e.counterparty_id => d,
                    _ => {
                        return Err(WorkflowRefusal::ReleaseNotDeliveredTo {
                            release: shown(&release),
                            user: e.counterparty_id.clone(),
                        }
                        .into());
                    }
                };
                if e.date < delivery.date {
                    return Err(WorkflowRefusal::ReportBeforeDelivery {
                        release: shown(&release),
                        date: e.date,
                        delivered_on: delivery.date,
                    }
                    .into());
                }
                if let Some(items) = given {
                    let beyond = items_beyond(&items, &delivery.items);
                    if !beyond.is_empty() {
                        return Err(WorkflowRefusal::ItemsBeyond { items: beyond }.into());
                    }
                    e.items = items_within(items, &delivery.items);
                }
            }
            BookKind::TransferOut | BookKind::TransferIn => {
                let id = e.contract.clone().unwrap_or_default();
                let Some(contract) = transfer_contract(&mut tx, &id).await? else {
                    return Err(WorkflowRefusal::TransferContractUnknown { contract: id }.into());
                };
                if e.date < contract.signed_on {
                    return Err(WorkflowRefusal::TransferBeforeContract {
                        contract: contract.id,
                        date: e.date,
                        signed_on: contract.signed_on,
                    }
                    .into());
                }
                if let Some(items) = given {
                    let beyond = items_beyond(&items, &contract.items);
                    if !beyond.is_empty() {
                        return Err(WorkflowRefusal::ItemsBeyond { items: beyond }.into());
                    }
                    e.items = items_within(items, &contract.items);
                }
            }
        }
        if e.date == current.date
            && e.items == current.items
            && e.to_name == current.to_name
            && e.to_address == current.to_address
            && e.method == current.method
        {
            return Err(WorkflowRefusal::NothingToChange.into());
        }
        let corrected = current.entry_no;
        let entry = match insert_entry(&mut tx, e).await {
            // Two corrections of one entry at once: the second meets the first's row in the
            // unique index on `corrects`. Said as a refusal the actor can act on.
            Err(WorkflowError::Sql(sqlx::Error::Database(d))) if d.is_unique_violation() => {
                return Err(
                    WorkflowRefusal::BookEntryCorrectedMeanwhile { entry: corrected }.into(),
                );
            }
            r => r?,
        };
        tx.commit().await?;
        Ok(entry)
    }

    /// One book entry by number, with what corrects it.
    pub async fn book_entry(&self, entry_no: i64) -> Result<Option<BookEntry>> {
        let mut conn = self.db().pool().acquire().await?;
        entry_by_no(&mut conn, entry_no).await
    }

    /// The delivery entry of a release in force (the original or its latest correction),
    /// if it has one.
    pub async fn delivery_entry(&self, release: &str) -> Result<Option<BookEntry>> {
        let mut conn = self.db().pool().acquire().await?;
        delivery_of(&mut conn, release).await
    }
}

/// The user (current version) and the release's delivery entry to them, for a report dated
/// `on`: refused when the user is unknown, the books show no delivery of the release to
/// that user, or the report is dated before the delivery.
async fn reported(
    conn: &mut AnyConnection,
    user: &str,
    release: &str,
    on: NaiveDate,
) -> Result<(User, BookEntry)> {
    let Some(u) = latest_user(conn, user).await? else {
        return Err(WorkflowRefusal::UserUnknown { user: user.into() }.into());
    };
    let delivery = match delivery_of(conn, release).await? {
        Some(d) if d.counterparty_id == u.id => d,
        _ => {
            return Err(WorkflowRefusal::ReleaseNotDeliveredTo {
                release: shown(release),
                user: u.id,
            }
            .into());
        }
    };
    if on < delivery.date {
        return Err(WorkflowRefusal::ReportBeforeDelivery {
            release: shown(release),
            date: on,
            delivered_on: delivery.date,
        }
        .into());
    }
    Ok((u, delivery))
}

fn report_entry(
    kind: BookKind,
    user: &User,
    delivery: &BookEntry,
    date: NaiveDate,
    items: BookItems,
    to: Option<(String, String)>,
    st: &Stamp,
) -> BookEntry {
    let (to_name, to_address) = match to {
        Some((n, a)) => (Some(n), Some(a)),
        None => (None, None),
    };
    BookEntry {
        entry_no: 0,
        kind,
        date,
        counterparty_kind: "user".into(),
        counterparty_id: user.id.clone(),
        counterparty_version: user.version,
        counterparty_name: user.name.clone(),
        counterparty_address: user.address.clone(),
        to_name,
        to_address,
        items,
        release: delivery.release.clone(),
        request: delivery.request.clone(),
        contract: delivery.contract.clone(),
        level: delivery.level,
        persons: None,
        method: None,
        corrects: None,
        correction_reason: None,
        corrected_by: None,
        recorded: recorded(0, st),
    }
}

/// `TABLE` or `TABLE.COLUMN` items (comma-separated values already split) as table →
/// columns. Tables must be clinical tables of the model; clinical notes only between
/// producers (`notes`), never to users. A column is letters, digits and `_`.
pub fn parse_items(v: &[String], notes: bool) -> Result<BookItems> {
    let mut out: BookItems = BTreeMap::new();
    for raw in v {
        let s = raw.trim();
        if s.is_empty() {
            continue;
        }
        let (t, col) = match s.split_once('.') {
            Some((t, c)) => (t.trim(), Some(c.trim())),
            None => (s, None),
        };
        let Some(table) = Table::from_name(t) else {
            let mut shown: String = t.chars().take(64).collect();
            if shown.len() < t.len() {
                shown.push('…');
            }
            return Err(WorkflowRefusal::TableUnknown { table: shown }.into());
        };
        if table == Table::Note && !notes {
            return Err(WorkflowRefusal::TableNotReleasable { table: t.into() }.into());
        }
        let cols = out.entry(table.name().to_string()).or_default();
        if let Some(c) = col {
            let ok = !c.is_empty()
                && c.len() <= 64
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
            if !ok {
                return Err(WorkflowRefusal::ItemInvalid.into());
            }
            cols.push(c.to_string());
        }
    }
    if out.is_empty() {
        return Err(WorkflowRefusal::TablesEmpty.into());
    }
    // A table named whole and by column is the whole table.
    for raw in v {
        let s = raw.trim();
        if !s.is_empty()
            && !s.contains('.')
            && let Some(t) = Table::from_name(s)
            && let Some(cols) = out.get_mut(t.name())
        {
            cols.clear();
        }
    }
    for cols in out.values_mut() {
        cols.sort();
        cols.dedup();
    }
    Ok(out)
}

/// The items of `asked` not covered by `allowed` (`TABLE` or `TABLE.COLUMN`): a table
/// asked whole means all of it that is allowed; an allowed table without columns covers
/// all of its columns.
pub fn items_beyond(asked: &BookItems, allowed: &BookItems) -> Vec<String> {
    let mut out = Vec::new();
    for (t, cols) in asked {
        match allowed.get(t) {
            None => out.push(t.clone()),
            Some(a) if a.is_empty() => {}
            Some(a) => {
                for c in cols {
                    if !a.contains(c) {
                        out.push(format!("{t}.{c}"));
                    }
                }
            }
        }
    }
    out
}

/// `asked` with every table asked whole given the columns `allowed` names for it, so an
/// entry says exactly which columns it covers.
pub fn items_within(asked: BookItems, allowed: &BookItems) -> BookItems {
    asked
        .into_iter()
        .map(|(t, cols)| {
            let cols = match (cols.is_empty(), allowed.get(&t)) {
                (true, Some(a)) => a.clone(),
                _ => cols,
            };
            (t, cols)
        })
        .collect()
}

/// `person(person_id,sex); drug_exposure` — the items as one line of text.
pub fn items_text(items: &BookItems) -> String {
    items
        .iter()
        .map(|(t, cols)| {
            if cols.is_empty() {
                t.clone()
            } else {
                format!("{t}({})", cols.join(","))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn items_json(items: &BookItems) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "{}".into())
}

// Storage.

const PRODUCER_COLS: &str = "SELECT producer_id, version, seq, name, address, representative, \
     cert_no, own, recorded_at, recorded_by";
const TC_COLS: &str = "SELECT contract_id, seq, producer_id, direction, signed_on, provider_name, \
     provider_address, provider_representative, recipient_name, recipient_address, \
     recipient_representative, items, method, recorded_at, recorded_by";
const ENTRY_COLS: &str = "SELECT entry_no, kind, entry_date, counterparty_kind, counterparty_id, \
     counterparty_version, counterparty_name, counterparty_address, to_name, to_address, items, \
     release_id, request_id, contract_id, level, persons, method, corrects, recorded_at, \
     recorded_by, correction_reason, (SELECT MIN(c.entry_no) FROM book_entries c \
     WHERE c.corrects = book_entries.entry_no) AS corrected_by";

async fn insert_entry(conn: &mut AnyConnection, mut e: BookEntry) -> Result<BookEntry> {
    // The workflow's one counter orders every record, the books included.
    let seq = next_seq(conn).await?;
    e.entry_no = seq;
    e.recorded.seq = seq;
    sqlx::query(
        "INSERT INTO book_entries (entry_no, kind, entry_date, counterparty_kind, \
         counterparty_id, counterparty_version, counterparty_name, counterparty_address, \
         to_name, to_address, items, release_id, request_id, contract_id, level, persons, \
         method, corrects, recorded_at, recorded_by, correction_reason) VALUES ($1, $2, $3, $4, \
         $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
    )
    .bind(e.entry_no)
    .bind(e.kind.as_str())
    .bind(e.date.to_string())
    .bind(&e.counterparty_kind)
    .bind(&e.counterparty_id)
    .bind(e.counterparty_version)
    .bind(&e.counterparty_name)
    .bind(&e.counterparty_address)
    .bind(e.to_name.clone())
    .bind(e.to_address.clone())
    .bind(items_json(&e.items))
    .bind(e.release.clone())
    .bind(e.request.clone())
    .bind(e.contract.clone())
    .bind(e.level.map(|l| l.as_str()))
    .bind(e.persons.map(|p| p as i64))
    .bind(e.method.clone())
    .bind(e.corrects)
    .bind(&e.recorded.at)
    .bind(&e.recorded.by)
    .bind(e.correction_reason.clone())
    .execute(&mut *conn)
    .await?;
    Ok(e)
}

async fn insert_producer(conn: &mut AnyConnection, mut p: Producer) -> Result<Producer> {
    let seq = next_seq(conn).await?;
    p.recorded.seq = seq;
    sqlx::query(
        "INSERT INTO producers (producer_id, version, seq, name, address, representative, \
         cert_no, own, recorded_at, recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&p.id)
    .bind(p.version)
    .bind(seq)
    .bind(&p.name)
    .bind(&p.address)
    .bind(&p.representative)
    .bind(&p.cert_no)
    .bind(i64::from(p.own))
    .bind(&p.recorded.at)
    .bind(&p.recorded.by)
    .execute(&mut *conn)
    .await?;
    Ok(p)
}

async fn latest_producer(conn: &mut AnyConnection, id: &str) -> Result<Option<Producer>> {
    sqlx::query(&format!(
        "{PRODUCER_COLS} FROM producers WHERE producer_id = $1 ORDER BY version DESC LIMIT 1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(producer_row)
    .transpose()
}

async fn own_producer(conn: &mut AnyConnection) -> Result<Option<Producer>> {
    let id: Option<String> =
        sqlx::query("SELECT producer_id FROM producers WHERE own = 1 ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
    match id {
        Some(id) => latest_producer(conn, &id).await,
        None => Ok(None),
    }
}

async fn transfer_contract(conn: &mut AnyConnection, id: &str) -> Result<Option<TransferContract>> {
    sqlx::query(&format!(
        "{TC_COLS} FROM transfer_contracts WHERE contract_id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(tc_row)
    .transpose()
}

async fn entry_by_no(conn: &mut AnyConnection, no: i64) -> Result<Option<BookEntry>> {
    sqlx::query(&format!(
        "{ENTRY_COLS} FROM book_entries WHERE entry_no = $1"
    ))
    .bind(no)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(entry_row)
    .transpose()
}

/// The delivery entry of a release in force: the original, or its latest correction.
async fn delivery_of(conn: &mut AnyConnection, release: &str) -> Result<Option<BookEntry>> {
    sqlx::query(&format!(
        "{ENTRY_COLS} FROM book_entries WHERE release_id = $1 AND kind = 'delivery' \
         AND NOT EXISTS (SELECT 1 FROM book_entries c WHERE c.corrects = book_entries.entry_no) \
         ORDER BY entry_no DESC LIMIT 1"
    ))
    .bind(release)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(entry_row)
    .transpose()
}

fn producer_row(r: &AnyRow) -> Result<Producer> {
    let own: i64 = r.try_get("own")?;
    Ok(Producer {
        id: r.try_get("producer_id")?,
        version: r.try_get("version")?,
        name: r.try_get("name")?,
        address: r.try_get("address")?,
        representative: r.try_get("representative")?,
        cert_no: r.try_get("cert_no")?,
        own: own != 0,
        recorded: recorded_row(r)?,
    })
}

fn read_items(table: &'static str, id: &str, s: &str) -> Result<BookItems> {
    serde_json::from_str(s).map_err(|_| corrupt(table, id, "items"))
}

fn tc_row(r: &AnyRow) -> Result<TransferContract> {
    const T: &str = "transfer_contracts";
    let id: String = r.try_get("contract_id")?;
    let direction: String = r.try_get("direction")?;
    let direction = Direction::parse(&direction).ok_or_else(|| corrupt(T, &id, "direction"))?;
    let signed: String = r.try_get("signed_on")?;
    let items: String = r.try_get("items")?;
    Ok(TransferContract {
        producer: r.try_get("producer_id")?,
        direction,
        signed_on: date(T, &id, "signed_on", &signed)?,
        provider: Party {
            name: r.try_get("provider_name")?,
            address: r.try_get("provider_address")?,
            representative: r.try_get("provider_representative")?,
        },
        recipient: Party {
            name: r.try_get("recipient_name")?,
            address: r.try_get("recipient_address")?,
            representative: r.try_get("recipient_representative")?,
        },
        items: read_items(T, &id, &items)?,
        method: r.try_get("method")?,
        recorded: recorded_row(r)?,
        id,
    })
}

fn entry_row(r: &AnyRow) -> Result<BookEntry> {
    const T: &str = "book_entries";
    let no: i64 = r.try_get("entry_no")?;
    let id = no.to_string();
    let kind: String = r.try_get("kind")?;
    let kind = BookKind::parse(&kind).ok_or_else(|| corrupt(T, &id, "kind"))?;
    let d: String = r.try_get("entry_date")?;
    let items: String = r.try_get("items")?;
    let level: Option<String> = r.try_get("level")?;
    let level = level
        .map(|l| Level::parse(&l).ok_or_else(|| corrupt(T, &id, "level")))
        .transpose()?;
    let persons: Option<i64> = r.try_get("persons")?;
    Ok(BookEntry {
        entry_no: no,
        kind,
        date: date(T, &id, "entry_date", &d)?,
        counterparty_kind: r.try_get("counterparty_kind")?,
        counterparty_id: r.try_get("counterparty_id")?,
        counterparty_version: r.try_get("counterparty_version")?,
        counterparty_name: r.try_get("counterparty_name")?,
        counterparty_address: r.try_get("counterparty_address")?,
        to_name: r.try_get("to_name")?,
        to_address: r.try_get("to_address")?,
        items: read_items(T, &id, &items)?,
        release: r.try_get("release_id")?,
        request: r.try_get("request_id")?,
        contract: r.try_get("contract_id")?,
        level,
        persons: persons.map(|p| p.max(0) as u64),
        method: r.try_get("method")?,
        corrects: r.try_get("corrects")?,
        correction_reason: r.try_get("correction_reason")?,
        corrected_by: r.try_get("corrected_by")?,
        recorded: Recorded {
            seq: no,
            at: r.try_get("recorded_at")?,
            by: r.try_get("recorded_by")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(v: &[&str]) -> BookItems {
        parse_items(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), false).expect("items")
    }

    #[test]
    fn items_are_tables_or_columns_and_never_notes_to_users() {
        let i = items(&["person.sex", "person.person_id", "drug_exposure"]);
        assert_eq!(
            i["person"],
            vec!["person_id".to_string(), "sex".to_string()]
        );
        assert!(i["drug_exposure"].is_empty());
        // Whole and by column: the whole table.
        assert!(items(&["person", "person.sex"])["person"].is_empty());
        assert!(parse_items(&["note".into()], false).is_err());
        assert!(parse_items(&["note".into()], true).is_ok());
        assert!(parse_items(&["person.性別".into()], false).is_err());
        assert!(parse_items(&["patients".into()], false).is_err());
        assert!(parse_items(&[" ".into()], false).is_err());
    }

    #[test]
    fn items_beyond_names_what_was_not_delivered() {
        let delivered = items(&["person.person_id", "person.sex", "drug_exposure"]);
        assert!(
            items_beyond(
                &items(&["person.sex", "drug_exposure.drug_code"]),
                &delivered
            )
            .is_empty()
        );
        assert_eq!(
            items_beyond(
                &items(&["person", "measurement", "person.year_of_birth"]),
                &delivered
            ),
            vec!["measurement".to_string()]
        );
        // A table asked whole is all of it that was delivered, and the entry says which.
        assert_eq!(
            items_within(items(&["person"]), &delivered)["person"],
            vec!["person_id".to_string(), "sex".to_string()]
        );
        assert_eq!(
            items_beyond(&items(&["person.year_of_birth"]), &delivered),
            vec!["person.year_of_birth".to_string()]
        );
        assert_eq!(
            items_text(&delivered),
            "drug_exposure; person(person_id,sex)"
        );
    }
}
