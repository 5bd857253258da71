//! Japanese geography the model needs: prefectures (都道府県) and their regions (地方).
//! The clinical store keeps only the prefecture of an address; finer parts are identity.

/// The region (地方) of a prefecture, for the prefecture hierarchy.
pub fn region_of(prefecture: &str) -> Option<&'static str> {
    const REGIONS: &[(&str, &[&str])] = &[
        ("北海道地方", &["北海道"]),
        (
            "東北地方",
            &["青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県"],
        ),
        (
            "関東地方",
            &[
                "茨城県",
                "栃木県",
                "群馬県",
                "埼玉県",
                "千葉県",
                "東京都",
                "神奈川県",
            ],
        ),
        (
            "中部地方",
            &[
                "新潟県",
                "富山県",
                "石川県",
                "福井県",
                "山梨県",
                "長野県",
                "岐阜県",
                "静岡県",
                "愛知県",
            ],
        ),
        (
            "近畿地方",
            &[
                "三重県",
                "滋賀県",
                "京都府",
                "大阪府",
                "兵庫県",
                "奈良県",
                "和歌山県",
            ],
        ),
        (
            "中国地方",
            &["鳥取県", "島根県", "岡山県", "広島県", "山口県"],
        ),
        ("四国地方", &["徳島県", "香川県", "愛媛県", "高知県"]),
        (
            "九州・沖縄地方",
            &[
                "福岡県",
                "佐賀県",
                "長崎県",
                "熊本県",
                "大分県",
                "宮崎県",
                "鹿児島県",
                "沖縄県",
            ],
        ),
    ];
    REGIONS
        .iter()
        .find(|(_, ps)| ps.contains(&prefecture))
        .map(|(r, _)| *r)
}

/// The 47 prefectures in JIS X 0401 order (index + 1 is the JIS code).
pub const PREFECTURES: [&str; 47] = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];

/// The prefecture named at the start of an address, if any (the clinical store keeps only
/// this part of the address).
pub fn prefecture_of(address: &str) -> Option<&'static str> {
    let a = address.trim_start();
    PREFECTURES.into_iter().find(|p| a.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefectures_and_regions() {
        assert_eq!(prefecture_of("神奈川県横浜市"), Some("神奈川県"));
        assert_eq!(prefecture_of(" 北海道札幌市"), Some("北海道"));
        assert_eq!(prefecture_of("横浜市"), None);
        assert_eq!(region_of("大阪府"), Some("近畿地方"));
        assert_eq!(region_of("Osaka"), None);
    }
}
