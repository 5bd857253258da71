//! The words of every refusal (`kiban_pipeline::Refusal`): Japanese, or English with
//! `--lang en`. The library gives the reason and its values; only this module words them,
//! and every message ends with the refusal's stable code in brackets, so that a script or a
//! support request can name it whatever the language.

use kiban_consent::ConsentError;
use kiban_pipeline::Refusal;
use kiban_pipeline::refusal::IdField;

use crate::ui::Lang;

/// The message of `r` in `lang`, followed by `[code]`.
pub fn render(r: &Refusal, lang: Lang) -> String {
    format!("{} [{}]", words(r, lang), r.code())
}

fn words(r: &Refusal, lang: Lang) -> String {
    let ja = lang == Lang::Ja;
    let pick = |j: String, e: String| if ja { j } else { e };
    match r {
        Refusal::WorkspaceExists { dir } => pick(
            format!("{} には既にワークスペースがあります", dir.display()),
            format!("a workspace already exists in {}", dir.display()),
        ),
        Refusal::NoWorkspace { dir } => pick(
            format!(
                "{} にワークスペースがありません（kiban init で作成してください）",
                dir.display()
            ),
            format!(
                "no workspace in {} (create one with kiban init)",
                dir.display()
            ),
        ),
        Refusal::KeyFileExposed { path, mode } => pick(
            format!(
                "鍵ファイル {} がグループまたは他のユーザーに開かれています（mode {mode:o}）。鍵は漏えいしたものとして扱い、経緯を確認して chmod 600 にしてから開き直してください",
                path.display()
            ),
            format!(
                "key file {} is open to group or others (mode {mode:o}): treat the key as exposed, find out how, make it owner-only (chmod 600) and open again",
                path.display()
            ),
        ),
        Refusal::CheckpointUnreadable { path } => pick(
            format!(
                "{} は kiban audit checkpoint --export で書き出したチェックポイントではありません",
                path.display()
            ),
            format!(
                "{} is not a checkpoint written by kiban audit checkpoint --export",
                path.display()
            ),
        ),
        Refusal::BackupPostgres => pick(
            "PostgreSQL のワークスペースはバックアップできません。データベースは pg_dump で、ほかのフォルダと keys/ は別々に複製してください（README「バックアップと復元」）".to_string(),
            "a PostgreSQL workspace is not backed up by kiban: back up its database with pg_dump, and its folders and keys/ apart (README, Backup and restore)".to_string(),
        ),
        Refusal::BackupDatabaseOutside => pick(
            "SQLite のデータベースがワークスペースのフォルダの外にあるため、バックアップできません".to_string(),
            "the SQLite database is outside the workspace folder: it cannot be backed up with it".to_string(),
        ),
        Refusal::BackupPathNotUtf8 { path } => pick(
            format!("ファイル名 {} は UTF-8 ではありません", path.display()),
            format!("the file name {} is not UTF-8", path.display()),
        ),
        Refusal::BackupFileUnsupported { path } => pick(
            format!("{path} はファイルでもフォルダでもありません（リンクなど）"),
            format!("{path} is neither a file nor a folder (a link?)"),
        ),
        Refusal::BackupManifestUnreadable { path } => pick(
            format!(
                "{} は kiban backup の manifest.json として読めません",
                path.display()
            ),
            format!(
                "{} is not a readable manifest.json of kiban backup",
                path.display()
            ),
        ),
        Refusal::BackupSignatureInvalid { path } => pick(
            format!(
                "{} の署名が鍵（audit-signing.key）で検証できません。マニフェストが書き換えられたか、別のワークスペースの鍵です。復元しません",
                path.display()
            ),
            format!(
                "the signature of {} does not check under the keys given (audit-signing.key): the manifest was changed, or the keys are another workspace's; nothing restored",
                path.display()
            ),
        ),
        Refusal::BackupFileMissing { path } => pick(
            format!("バックアップに {path} がありません。復元しません"),
            format!("the backup lacks {path}; nothing restored"),
        ),
        Refusal::BackupFileChanged { path } => pick(
            format!(
                "バックアップの {path} がマニフェストの SHA-256 と一致しません（改ざんまたは破損）。復元しません"
            ),
            format!(
                "{path} in the backup does not match the manifest's SHA-256 (changed or damaged); nothing restored"
            ),
        ),
        Refusal::BackupFileUnlisted { path } => pick(
            format!("バックアップにマニフェストにないファイル {path} があります。復元しません"),
            format!("the backup holds {path}, which its manifest does not list; nothing restored"),
        ),
        Refusal::RestoreAuditBroken { findings } => pick(
            format!(
                "復元した監査ログが署名付きチェックポイントと一致しません（{findings} 件の問題）。復元しません"
            ),
            format!(
                "the restored audit log does not verify against its signed checkpoint ({findings} findings); nothing restored"
            ),
        ),
        Refusal::RestoreNotSameWorkspace { live } => pick(
            format!(
                "{} はこのバックアップのワークスペースではありません（--live には取得元のワークスペースを指定してください）",
                live.display()
            ),
            format!(
                "{} is not the workspace this backup was taken of (--live names the workspace it came from)",
                live.display()
            ),
        ),
        Refusal::HandlerUnknown { handler } => pick(
            format!(
                "医療情報取扱事業者 {handler} は登録されていません（kiban handler add で登録してください）"
            ),
            format!("handler {handler} is not registered (register it with kiban handler add)"),
        ),
        Refusal::HandlerExists { handler } => pick(
            format!("医療情報取扱事業者 {handler} は登録済みです（変更は kiban handler update）"),
            format!("handler {handler} is already registered (change it with kiban handler update)"),
        ),
        Refusal::HandlerNotReady { handler, reason } => pick(
            format!("医療情報取扱事業者 {handler}: {reason}"),
            format!("handler {handler}: {}", reason.message_en()),
        ),
        Refusal::NothingToChange => pick(
            "変更する項目を指定してください（--name, --address, --representative, --filed, --published, --own-published, --waiting-days など）".into(),
            "nothing to change: give at least one of --name, --address, --representative, --filed, --published, --own-published, --waiting-days, …".into(),
        ),
        Refusal::NoticeVersionExists { handler, version } => pick(
            format!(
                "医療情報取扱事業者 {handler} の通知の版 {version} は登録済みです（版を変えて登録してください）"
            ),
            format!(
                "notice version {version} of handler {handler} already exists (add a new version)"
            ),
        ),
        Refusal::NoticeDocumentSize { max_mib } => pick(
            format!(
                "通知文書 (--document) は 1 バイト以上 {max_mib} MiB 以下のファイルを指定してください"
            ),
            format!("the notice document (--document) must be a file of 1 byte to {max_mib} MiB"),
        ),
        Refusal::HandlerListCodeMissing { path, line } => pick(
            format!("{}: {line} 行目: コードがありません", path.display()),
            format!("{}: line {line}: the code is empty", path.display()),
        ),
        Refusal::PathMissing { path } => pick(
            format!("{} がありません", path.display()),
            format!("{} does not exist", path.display()),
        ),
        Refusal::FolderUnreadable { root } => pick(
            format!(
                "{} 内のフォルダを読めません（権限を確認してください）",
                root.display()
            ),
            format!(
                "cannot read a folder inside {} (check permissions)",
                root.display()
            ),
        ),
        Refusal::NoReader { file_ref } => pick(
            format!("ファイル {file_ref} を読む形式がありません（kiban files show {file_ref}）"),
            format!("no reader for file {file_ref} (kiban files show {file_ref})"),
        ),
        Refusal::OutputNotEmpty { path } => pick(
            format!("出力先 {} が空ではありません", path.display()),
            format!("the output folder {} is not empty", path.display()),
        ),
        Refusal::NotADemoFolder { path } => pick(
            format!(
                "{} は空ではなく、デモのフォルダでもありません",
                path.display()
            ),
            format!("{} is not empty and not a demo folder", path.display()),
        ),
        Refusal::DuplicateRelativePath => pick(
            "同じ相対パスのファイルが複数の入力にあります（入力フォルダの重複を確認してください）".into(),
            "two inputs hold a file with the same relative path (check for overlapping input folders)".into(),
        ),
        Refusal::ProducerRequired => pick(
            "提供先の名称と住所が必要です (--to, --producer-address)".into(),
            "the producer's name and address are required (--to, --producer-address)".into(),
        ),
        Refusal::PatientIdFormat {
            field,
            handler,
            format,
            error,
        } => {
            let (fj, fe) = match field {
                IdField::PatientArg => ("患者ID (--patient)", "patient ID (--patient)"),
                IdField::PatientId => ("患者ID", "patient ID"),
            };
            pick(
                format!(
                    "{fj}が医療情報取扱事業者 {handler} の患者IDの形式 {format} に合わないため受け付けません: {}",
                    error.message_ja()
                ),
                format!(
                    "the {fe} does not fit the patient ID format {format} of handler {handler}: {}",
                    error.message_en()
                ),
            )
        }
        Refusal::RequesterRequired => pick(
            "求めを行った者の氏名 (--requester) が必要です（受付書に記載します）".into(),
            "the requester's name (--requester) is required: the receipt names who made the request".into(),
        ),
        Refusal::ReceiptBeforeRequest => pick(
            "受付書の交付日が求めを受けた日より前です".into(),
            "the receipt's issue date is before the request was received".into(),
        ),
        Refusal::FieldNotForEvent => pick(
            "生年月日・同意の範囲は求め・同意にのみ指定できます".into(),
            "a birth date or a consent scope belongs to requests and consents".into(),
        ),
        Refusal::SubjectBothForms => pick(
            "患者は --registration か --handler と --patient のどちらか一方で指定してください".into(),
            "name the patient either by --registration or by --handler with --patient, not both".into(),
        ),
        Refusal::SubjectMissing => pick(
            "患者を --handler と --patient、または --registration で指定してください".into(),
            "name the patient by --handler with --patient, or by --registration".into(),
        ),
        Refusal::ScopeNotForKind => pick(
            "削除の範囲 (--scope handler|person) は削除の求めにのみ指定できます".into(),
            "a deletion scope (--scope handler|person) belongs to deletion requests".into(),
        ),
        Refusal::ScopeNoData => pick(
            "この患者のデータはまだ受領していないため、本人単位の削除 (--scope person) の対象がありません。--scope handler で記録してください".into(),
            "no data of this patient has been received, so a person-scope deletion (--scope person) reaches nothing: record it with --scope handler".into(),
        ),
        Refusal::ScopeNoLinkage => pick(
            "名寄せ（kiban link）が一度も実行されていないため、本人単位の削除 (--scope person) の範囲が決まりません。先に kiban link を実行してください".into(),
            "no linkage run exists, so a person-scope deletion (--scope person) has no scope: run kiban link first".into(),
        ),
        Refusal::ScopeAfterLinkage { registration } => pick(
            format!(
                "登録 {registration} は最後の名寄せの後に受領されたため、本人単位の削除 (--scope person) の範囲が決まりません。kiban link を実行してから再度記録してください"
            ),
            format!(
                "registration {registration} was received after the last linkage run, so a person-scope deletion (--scope person) has no scope: run kiban link, then record it again"
            ),
        ),
        Refusal::NameEmpty => pick(
            "氏名 (--name) が空です".into(),
            "the name (--name) is empty".into(),
        ),
        Refusal::KanaNotKana => pick(
            "カナ氏名 (--kana) はカタカナまたはひらがなで指定してください".into(),
            "the kana name (--kana) must be written in kana".into(),
        ),
        Refusal::SexInvalid => pick(
            "性別 (--sex) は M または F で指定してください".into(),
            "the sex (--sex) must be M or F".into(),
        ),
        Refusal::ReceiptCopyMissing { number } => pick(
            format!(
                "受付書 {number} の控えはありません（保存期間の経過または削除の求めにより消去されました）"
            ),
            format!(
                "there is no stored copy of receipt {number} (never issued, past its retention period, or erased with the patient)"
            ),
        ),
        Refusal::ReceiptCopyUnreadable { number } => pick(
            format!(
                "受付書の控え {number} を読めません（破損しているか、別のワークスペースのものです）"
            ),
            format!(
                "the stored receipt copy {number} cannot be read (corrupt, or from another workspace)"
            ),
        ),
        Refusal::Consent(e) => consent(e, lang),
        Refusal::Linkage(e) => pick(
            format!("名寄せの設定を確認してください: {e}"),
            format!("check the linkage settings: {e}"),
        ),
        Refusal::SameRegistration => pick(
            "同じ登録どうしは判定できません".into(),
            "a and b must be different registrations".into(),
        ),
        Refusal::RegistrationUnknown { registration } => pick(
            format!("登録 {registration} はありません（kiban optout find で確認してください）"),
            format!("no registration {registration} (see kiban optout find)"),
        ),
        Refusal::ThresholdOutOfRange { value } => pick(
            format!("--threshold {value} は 0〜1 の範囲外です"),
            format!("--threshold {value} must be between 0 and 1"),
        ),
        Refusal::TruthFile { path, line, detail } => match line {
            Some(l) => pick(
                format!("{}: {l} 行目を読めません: {detail}", path.display()),
                format!("{}: line {l}: {detail}", path.display()),
            ),
            None => pick(
                format!("{} を読めません: {detail}", path.display()),
                format!("{}: {detail}", path.display()),
            ),
        },
        Refusal::TruthColumnMissing { path, column } => pick(
            format!(
                "{}: 列 {column} がありません（facility_code,patient_id,person_id が必要です）",
                path.display()
            ),
            format!(
                "{}: column {column} missing (need facility_code,patient_id,person_id)",
                path.display()
            ),
        ),
        Refusal::RequestUnknown { request } => pick(
            format!(
                "提供依頼 {request} は見つかりません（提供の手続きは未実装です。内部評価用には --request を省いてください）"
            ),
            format!(
                "request {request} not found (the release workflow is not implemented yet); omit --request for an internal evaluation release"
            ),
        ),
        Refusal::ReleaseDateFuture { on, today } => pick(
            format!("提供日 {on} は未来の日付です（今日は {today}）"),
            format!("the release date {on} is in the future (today is {today})"),
        ),
        Refusal::RerunLabel => pick(
            "--rerun-of のラベルは英数字と - _ . の 64 文字以内です".into(),
            "the --rerun-of label is 1-64 letters, digits, '-', '_' or '.'".into(),
        ),
        Refusal::ReleaseDateNotToday { on, today } => pick(
            format!(
                "提供日は今日（{today}）です。過去の日付 {on} は内部評価の再実行（--rerun-of ラベル）にだけ使えます"
            ),
            format!(
                "a release is made as of today ({today}); the earlier date {on} is allowed only for a labelled re-run of an internal evaluation (--rerun-of LABEL)"
            ),
        ),
        Refusal::ReleaseDateBeforeConsent { on, latest } => pick(
            format!(
                "提供日 {on} は最新のオプトアウト記録（通知・停止・削除）の日付 {latest} より前です：その後の停止の求めが反映されません"
            ),
            format!(
                "the release date {on} is earlier than the latest consent event on record ({latest}): a later stop or deletion would be left out"
            ),
        ),
        Refusal::RangeInverted { from, to } => pick(
            format!("期間の終わり {to} が始まり {from} より前です"),
            format!("the range ends ({to}) before it starts ({from})"),
        ),
        Refusal::RetentionTooShort { years, legal } => pick(
            format!("保存期間 {years} 年は法定の {legal} 年より短いです"),
            format!("a retention of {years} years is shorter than the legal {legal}"),
        ),
        Refusal::Workflow(r) => crate::workflow_cmds::refusal_words(r, lang),
        Refusal::Duty(r) => crate::duties_cmds::refusal_words(r, lang),
        Refusal::Incident(r) => crate::incident_cmds::refusal_words(r, lang),
        Refusal::ReleaseUnknown { release } => pick(
            format!("リリース {release} は記録にありません"),
            format!("release {release} is not on record"),
        ),
        Refusal::ReleaseErased { release, on } => pick(
            format!(
                "リリース {release} は {on} に消去済みです（鍵がないため仮名を再現できず、二重の消去もできません）"
            ),
            format!(
                "release {release} was already erased on {on} (its key is gone: its pseudonyms cannot be derived)"
            ),
        ),
        Refusal::PackageNotAFolder { path } => pick(
            format!("{} はフォルダではありません（何も消去していません）", path.display()),
            format!("{} is not a folder (nothing erased)", path.display()),
        ),
        Refusal::PackageManifestChanged { path } => pick(
            format!(
                "{} は提供時の記録と一致しません（何も消去していません。内容を確認してください）",
                path.display()
            ),
            format!(
                "{} is not the manifest on record (nothing erased; check the folder)",
                path.display()
            ),
        ),
        Refusal::PackageManifestUnreadable { path } => pick(
            format!("{} を読めません（何も消去していません）", path.display()),
            format!("{} does not read as a manifest (nothing erased)", path.display()),
        ),
        Refusal::PackageForeignFile { path, name } => pick(
            format!(
                "{} に kiban が書かないファイル {name:?} があります（何も消去していません）",
                path.display()
            ),
            format!(
                "{} lists a file kiban does not write, {name:?} (nothing erased)",
                path.display()
            ),
        ),
        Refusal::PackageNotAFile { path } => pick(
            format!("{} は通常のファイルではありません（何も消去していません）", path.display()),
            format!("{} is not a plain file (nothing erased)", path.display()),
        ),
        Refusal::ReleaseSameActor { release, actor } => pick(
            format!(
                "提供データ {release} は {actor} が作成したため、同じ担当者は承認できません（作成者とは別の担当者が --actor で承認してください）"
            ),
            format!(
                "release {release} was prepared by {actor}: the same actor cannot approve it (a different actor must, --actor)"
            ),
        ),
        Refusal::ReleaseNotAwaiting { release, status } => pick(
            format!("提供データ {release} は承認待ちではありません（状態: {status}）"),
            format!("release {release} is not awaiting approval (status: {status})"),
        ),
        Refusal::RecipientChanged {
            release,
            user,
            prepared_for,
            now,
        } => pick(
            format!(
                "利用者 {user} の公開鍵が、提供データ {release} の作成後に変更されています（作成時 {prepared_for}、現在 {now}）。作成者が見ていない鍵には封をしません。鍵の変更を確認のうえ、提供データを作成し直してください"
            ),
            format!(
                "user {user}'s key changed after release {release} was prepared (prepared for {prepared_for}, now {now}): kiban does not seal to a key the preparer never saw. Confirm the change, then prepare the release again"
            ),
        ),
        Refusal::RecipientKeyInvalid { user } => pick(
            format!(
                "利用者 {user} の公開鍵（age）を読めません（kiban user update --recipient で登録し直してください）"
            ),
            format!(
                "the age recipient key of user {user} does not read (record it again: kiban user update --recipient)"
            ),
        ),
        Refusal::ProducerKeyUnreadable { path } => pick(
            format!(
                "{} は作成事業者の公開鍵（Ed25519、16進 64 桁）ではありません",
                path.display()
            ),
            format!(
                "{} is not the producer's public key (Ed25519, 64 hex digits)",
                path.display()
            ),
        ),
        Refusal::PackageSignatureBad { path } => pick(
            format!(
                "署名の検証に失敗しました: {} は作成事業者の鍵による manifest.json の署名ではありません（改ざんされたか、別の鍵です）",
                path.display()
            ),
            format!(
                "signature check failed: {} is not the producer's signature of manifest.json (tampered, or another key)",
                path.display()
            ),
        ),
        Refusal::PackageHashMismatch { file } => pick(
            format!(
                "ハッシュが一致しません: {file} の SHA-256 が署名付きマニフェストと異なります（改ざんまたは破損）"
            ),
            format!(
                "hash mismatch: the SHA-256 of {file} is not the one the signed manifest states (tampered or damaged)"
            ),
        ),
        Refusal::PackageFileMissing { file } => pick(
            format!("署名付きマニフェストにある {file} がパッケージにありません"),
            format!("{file}, listed in the signed manifest, is missing from the package"),
        ),
        Refusal::PackageFileUnlisted { file } => pick(
            format!(
                "パッケージに署名付きマニフェストにない項目 {file:?} があります（何も残していません）"
            ),
            format!(
                "the package holds {file:?}, which the signed manifest does not list (nothing kept)"
            ),
        ),
        Refusal::IdentityUnreadable { path } => pick(
            format!(
                "{} に age の秘密鍵（AGE-SECRET-KEY-1…）がありません",
                path.display()
            ),
            format!(
                "{} holds no age identity (AGE-SECRET-KEY-1…)",
                path.display()
            ),
        ),
        Refusal::PackageDecrypt { path } => pick(
            format!(
                "{} を復号できません（この秘密鍵宛てではないか、ファイルが壊れています）",
                path.display()
            ),
            format!(
                "cannot decrypt {} (not encrypted to this identity, or the file is damaged)",
                path.display()
            ),
        ),
        // A refusal this build does not word yet still says what it is.
        other => pick(
            format!("受け付けられません: {other:?}"),
            format!("refused: {other:?}"),
        ),
    }
}

/// The consent registry's refusals.
fn consent(e: &ConsentError, lang: Lang) -> String {
    let ja = lang == Lang::Ja;
    let pick = |j: String, e: String| if ja { j } else { e };
    match e {
        ConsentError::HandlerExists { code } => pick(
            format!("医療情報取扱事業者 {code} は登録済みです"),
            format!("handler {code} is already registered"),
        ),
        ConsentError::UnknownHandler { code } => pick(
            format!("医療情報取扱事業者 {code} は登録されていません"),
            format!("handler {code} is not registered"),
        ),
        ConsentError::UnknownNoticeVersion { handler, version } => pick(
            format!(
                "医療情報取扱事業者 {handler} に通知の版 {version} は登録されていません（kiban handler notice-version add で登録してください）"
            ),
            format!(
                "handler {handler} has no notice version {version} (add it: kiban handler notice-version add)"
            ),
        ),
        ConsentError::NoticeBeforeVersion {
            version,
            valid_from,
        } => pick(
            format!("通知の日付が通知の版 {version} の適用開始日 {valid_from} より前です"),
            format!("the notice is dated before notice version {version} applies ({valid_from})"),
        ),
        ConsentError::RequesterNotAllowed(r) => lang.t(r.message_ja(), r.message_en()).to_string(),
        ConsentError::NoticeVersionExists { handler, version } => pick(
            format!("医療情報取扱事業者 {handler} の通知の版 {version} は登録済みです"),
            format!("notice version {version} of handler {handler} already exists"),
        ),
        ConsentError::Invalid { field, reason } => pick(
            format!("{field} が正しくありません: {reason}"),
            format!("invalid {field}: {reason}"),
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_names_its_code_in_both_languages() {
        let r = Refusal::PathMissing {
            path: "/nowhere".into(),
        };
        let ja = render(&r, Lang::Ja);
        let en = render(&r, Lang::En);
        assert!(ja.starts_with("/nowhere がありません"), "{ja}");
        assert!(en.starts_with("/nowhere does not exist"), "{en}");
        assert!(ja.ends_with("[path_missing]") && en.ends_with("[path_missing]"));
    }

    /// The refusals of a release under a request and of `package verify` have their own
    /// words (none falls to the catch-all), Japanese first, each ending with its code.
    #[test]
    fn release_approval_refusals_are_worded() {
        let all = [
            Refusal::ReleaseSameActor {
                release: "rel-1".into(),
                actor: "alice".into(),
            },
            Refusal::ReleaseNotAwaiting {
                release: "rel-1".into(),
                status: "approved".into(),
            },
            Refusal::RecipientKeyInvalid { user: "U1".into() },
            Refusal::RecipientChanged {
                release: "rel-1".into(),
                user: "U1".into(),
                prepared_for: "age1…aaaa".into(),
                now: "age1…bbbb".into(),
            },
            Refusal::ProducerKeyUnreadable {
                path: "p.pub".into(),
            },
            Refusal::PackageSignatureBad {
                path: "manifest.sig".into(),
            },
            Refusal::PackageHashMismatch {
                file: "person.csv".into(),
            },
            Refusal::PackageFileMissing {
                file: "person.csv".into(),
            },
            Refusal::PackageFileUnlisted {
                file: "../x".into(),
            },
            Refusal::IdentityUnreadable {
                path: "id.txt".into(),
            },
            Refusal::PackageDecrypt {
                path: "package.tar.age".into(),
            },
        ];
        for r in &all {
            let ja = render(r, Lang::Ja);
            let en = render(r, Lang::En);
            let code = format!("[{}]", r.code());
            assert!(ja.ends_with(&code) && en.ends_with(&code), "{ja} / {en}");
            assert!(!ja.starts_with("受け付けられません: "), "{ja}");
            assert!(!en.starts_with("refused: "), "{en}");
            assert!(ja.chars().any(|c| c as u32 >= 0x3040), "{ja}");
        }
        let ja = render(&all[0], Lang::Ja);
        assert!(ja.contains("同じ担当者は承認できません"), "{ja}");
        let en = render(&all[6], Lang::En);
        assert!(en.contains("person.csv"), "{en}");
    }
}
