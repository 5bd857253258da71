//! Japanese-noise synthetic population (shared by tests and examples): built here (not
//! with kiban-synth) from realistic name distributions (a Zipf-distributed pool of about two
//! thousand family names and some 1,500 given names, homophones included) with variant kanji, half-width and hiragana kana, spacing, 和暦 dates,
//! address spellings, typos, missing fields, moves, plus twins and namesakes that must never
//! merge.

use std::collections::HashMap;

use kiban_link::LinkRecord;
use kiban_model::{Identity, Sex};

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

// The most frequent family names, most frequent first: (kanji, kana). Variant spellings
// (渡邊, 髙橋, 𠮷田 …) are derived from VARIANTS when a registration is written.
const FAMILY_TOP: &[(&str, &str)] = &[
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
    ("佐々木", "ササキ"),
    ("山口", "ヤマグチ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
    ("林", "ハヤシ"),
    ("斉藤", "サイトウ"),
    ("清水", "シミズ"),
    ("山崎", "ヤマザキ"),
    ("森", "モリ"),
    ("池田", "イケダ"),
    ("橋本", "ハシモト"),
    ("阿部", "アベ"),
    ("石川", "イシカワ"),
    ("中島", "ナカジマ"),
    ("前田", "マエダ"),
    ("藤田", "フジタ"),
    ("小川", "オガワ"),
    ("後藤", "ゴトウ"),
    ("岡田", "オカダ"),
    ("長谷川", "ハセガワ"),
    ("村上", "ムラカミ"),
    ("近藤", "コンドウ"),
    ("石井", "イシイ"),
    ("坂本", "サカモト"),
    ("遠藤", "エンドウ"),
    ("青木", "アオキ"),
    ("藤井", "フジイ"),
    ("西村", "ニシムラ"),
    ("福田", "フクダ"),
    ("太田", "オオタ"),
    ("三浦", "ミウラ"),
    ("藤原", "フジワラ"),
    ("岡本", "オカモト"),
    ("松田", "マツダ"),
    ("中川", "ナカガワ"),
    ("宮崎", "ミヤザキ"),
    ("高木", "タカギ"),
    ("島田", "シマダ"),
    ("桜井", "サクライ"),
    ("沢田", "サワダ"),
    ("浜田", "ハマダ"),
    ("広田", "ヒロタ"),
    ("渡部", "ワタナベ"),
];
// Compound family names (head + tail): real surnames are mostly two-kanji compounds of a
// few hundred elements, which is what gives Japanese its tens of thousands of surnames with
// a long Zipf tail. (kanji, kana)
const FAM_HEAD: &[(&str, &str)] = &[
    ("山", "ヤマ"),
    ("中", "ナカ"),
    ("川", "カワ"),
    ("小", "コ"),
    ("大", "オオ"),
    ("高", "タカ"),
    ("石", "イシ"),
    ("松", "マツ"),
    ("森", "モリ"),
    ("岡", "オカ"),
    ("宮", "ミヤ"),
    ("長", "ナガ"),
    ("西", "ニシ"),
    ("北", "キタ"),
    ("東", "ヒガシ"),
    ("南", "ミナミ"),
    ("上", "ウエ"),
    ("下", "シモ"),
    ("前", "マエ"),
    ("青", "アオ"),
    ("平", "ヒラ"),
    ("福", "フク"),
    ("竹", "タケ"),
    ("浅", "アサ"),
    ("古", "フル"),
    ("今", "イマ"),
    ("内", "ウチ"),
    ("横", "ヨコ"),
    ("早", "ハヤ"),
    ("荒", "アラ"),
    ("金", "カネ"),
    ("菊", "キク"),
    ("桜", "サクラ"),
    ("柴", "シバ"),
    ("白", "シラ"),
    ("黒", "クロ"),
    ("赤", "アカ"),
    ("安", "ヤス"),
    ("吉", "ヨシ"),
    ("広", "ヒロ"),
    ("新", "ニイ"),
    ("杉", "スギ"),
    ("梅", "ウメ"),
    ("藤", "フジ"),
    ("野", "ノ"),
    ("原", "ハラ"),
    ("島", "シマ"),
    ("浜", "ハマ"),
    ("沢", "サワ"),
    ("菅", "スガ"),
    ("堀", "ホリ"),
    ("岩", "イワ"),
    ("丸", "マル"),
    ("秋", "アキ"),
    ("春", "ハル"),
    ("片", "カタ"),
    ("三", "ミ"),
    ("寺", "テラ"),
    ("坂", "サカ"),
    ("池", "イケ"),
    ("滝", "タキ"),
    ("水", "ミズ"),
    ("星", "ホシ"),
    ("神", "カミ"),
    ("門", "カド"),
    ("桑", "クワ"),
    ("市", "イチ"),
    ("津", "ツ"),
    ("有", "アリ"),
    ("真", "マ"),
];
// (kanji, kana, kana with rendaku voicing)
const FAM_TAIL: &[(&str, &str, &str)] = &[
    ("田", "タ", "ダ"),
    ("川", "カワ", "ガワ"),
    ("山", "ヤマ", "ヤマ"),
    ("本", "モト", "モト"),
    ("村", "ムラ", "ムラ"),
    ("井", "イ", "イ"),
    ("野", "ノ", "ノ"),
    ("原", "ハラ", "バラ"),
    ("島", "シマ", "ジマ"),
    ("沢", "サワ", "ザワ"),
    ("木", "キ", "ギ"),
    ("谷", "タニ", "ヤ"),
    ("崎", "サキ", "ザキ"),
    ("口", "クチ", "グチ"),
    ("部", "ベ", "ベ"),
    ("尾", "オ", "オ"),
    ("林", "ハヤシ", "バヤシ"),
    ("岡", "オカ", "オカ"),
    ("森", "モリ", "モリ"),
    ("内", "ウチ", "ウチ"),
    ("浦", "ウラ", "ウラ"),
    ("橋", "ハシ", "バシ"),
    ("池", "イケ", "イケ"),
    ("瀬", "セ", "セ"),
    ("坂", "サカ", "ザカ"),
    ("藤", "トウ", "ドウ"),
    ("辺", "ベ", "ベ"),
    ("城", "シロ", "ジロ"),
    ("倉", "クラ", "グラ"),
    ("塚", "ツカ", "ヅカ"),
];
// Given names: the common ones first, then head + tail compounds. (kanji, kana)
const MALE_TOP: &[(&str, &str)] = &[
    ("太郎", "タロウ"),
    ("健太", "ケンタ"),
    ("翔太", "ショウタ"),
    ("大輔", "ダイスケ"),
    ("拓也", "タクヤ"),
    ("直樹", "ナオキ"),
    ("誠", "マコト"),
    ("浩", "ヒロシ"),
    ("隆", "タカシ"),
    ("茂", "シゲル"),
    ("勇", "イサム"),
    ("和夫", "カズオ"),
    ("正雄", "マサオ"),
    ("博之", "ヒロユキ"),
    ("達也", "タツヤ"),
    ("翼", "ツバサ"),
    ("蓮", "レン"),
    ("大翔", "ヒロト"),
    ("悠真", "ユウマ"),
    ("陽斗", "ハルト"),
    ("湊", "ミナト"),
    ("一郎", "イチロウ"),
    ("修", "オサム"),
    ("清", "キヨシ"),
    ("進", "ススム"),
    ("昭", "アキラ"),
    ("亮", "リョウ"),
    ("雄一", "ユウイチ"),
    ("晋也", "シンヤ"),
    ("國男", "クニオ"),
    ("榮作", "エイサク"),
];
const MALE_HEAD: &[(&str, &str)] = &[
    ("健", "ケン"),
    ("翔", "ショウ"),
    ("拓", "タク"),
    ("直", "ナオ"),
    ("和", "カズ"),
    ("正", "マサ"),
    ("博", "ヒロ"),
    ("達", "タツ"),
    ("悠", "ユウ"),
    ("陽", "ハル"),
    ("雄", "ユウ"),
    ("康", "ヤス"),
    ("秀", "ヒデ"),
    ("英", "ヒデ"),
    ("光", "ミツ"),
    ("信", "ノブ"),
    ("義", "ヨシ"),
    ("孝", "タカ"),
    ("俊", "トシ"),
    ("智", "トモ"),
    ("勝", "カツ"),
    ("隆", "タカ"),
    ("浩", "コウ"),
    ("亮", "リョウ"),
    ("真", "シン"),
    ("優", "ユウ"),
    ("大", "ダイ"),
    ("賢", "ケン"),
    ("修", "シュウ"),
    ("昌", "マサ"),
    ("哲", "テツ"),
    ("裕", "ユウ"),
    ("恭", "キョウ"),
    ("晴", "ハル"),
    ("幸", "ユキ"),
    ("友", "トモ"),
    ("良", "リョウ"),
    ("広", "ヒロ"),
    ("文", "フミ"),
    ("武", "タケ"),
];
const MALE_TAIL: &[(&str, &str)] = &[
    ("太", "タ"),
    ("介", "スケ"),
    ("輔", "スケ"),
    ("也", "ヤ"),
    ("樹", "キ"),
    ("斗", "ト"),
    ("人", "ト"),
    ("郎", "ロウ"),
    ("一", "イチ"),
    ("二", "ジ"),
    ("夫", "オ"),
    ("男", "オ"),
    ("彦", "ヒコ"),
    ("平", "ヘイ"),
    ("吾", "ゴ"),
    ("志", "シ"),
    ("之", "ユキ"),
    ("司", "ジ"),
    ("治", "ジ"),
    ("朗", "ロウ"),
];
const FEMALE_TOP: &[(&str, &str)] = &[
    ("花子", "ハナコ"),
    ("陽子", "ヨウコ"),
    ("恵子", "ケイコ"),
    ("京子", "キョウコ"),
    ("幸子", "サチコ"),
    ("裕子", "ユウコ"),
    ("真由美", "マユミ"),
    ("美穂", "ミホ"),
    ("愛", "アイ"),
    ("優子", "ユウコ"),
    ("由美", "ユミ"),
    ("明美", "アケミ"),
    ("直美", "ナオミ"),
    ("智子", "トモコ"),
    ("久美子", "クミコ"),
    ("結衣", "ユイ"),
    ("陽菜", "ヒナ"),
    ("美咲", "ミサキ"),
    ("葵", "アオイ"),
    ("凛", "リン"),
    ("千尋", "チヒロ"),
    ("舞", "マイ"),
    ("彩", "アヤ"),
    ("綾香", "アヤカ"),
    ("麻衣", "マイ"),
    ("里奈", "リナ"),
    ("瞳", "ヒトミ"),
    ("恵", "メグミ"),
    ("純子", "ジュンコ"),
    ("眞理子", "マリコ"),
];
const FEMALE_HEAD: &[(&str, &str)] = &[
    ("美", "ミ"),
    ("幸", "サチ"),
    ("裕", "ユウ"),
    ("優", "ユウ"),
    ("真", "マ"),
    ("由", "ユ"),
    ("明", "アケ"),
    ("智", "トモ"),
    ("久", "ク"),
    ("結", "ユ"),
    ("陽", "ヒ"),
    ("愛", "アイ"),
    ("彩", "アヤ"),
    ("千", "チ"),
    ("里", "リ"),
    ("麻", "マ"),
    ("奈", "ナ"),
    ("春", "ハル"),
    ("夏", "ナツ"),
    ("秋", "アキ"),
    ("花", "ハナ"),
    ("桃", "モモ"),
    ("沙", "サ"),
    ("紗", "サ"),
    ("佳", "カ"),
    ("和", "カズ"),
    ("直", "ナオ"),
    ("京", "キョウ"),
    ("洋", "ヨウ"),
    ("順", "ジュン"),
    ("敬", "ケイ"),
    ("典", "ノリ"),
    ("紀", "ノリ"),
    ("弘", "ヒロ"),
    ("文", "フミ"),
    ("雅", "マサ"),
    ("友", "トモ"),
    ("瑞", "ミズ"),
    ("早", "サ"),
    ("恵", "メグ"),
];
const FEMALE_TAIL: &[(&str, &str)] = &[
    ("子", "コ"),
    ("美", "ミ"),
    ("香", "カ"),
    ("奈", "ナ"),
    ("恵", "エ"),
    ("代", "ヨ"),
    ("江", "エ"),
    ("枝", "エ"),
    ("乃", "ノ"),
    ("花", "カ"),
    ("菜", "ナ"),
    ("希", "キ"),
    ("穂", "ホ"),
    ("里", "リ"),
    ("絵", "エ"),
    ("世", "ヨ"),
];
/// Old/variant forms hospitals write for a canonical kanji (all folded by the linker's table).
const VARIANTS: &[(char, char)] = &[
    ('辺', '邊'),
    ('高', '髙'),
    ('崎', '﨑'),
    ('斉', '齋'),
    ('沢', '澤'),
    ('浜', '濱'),
    ('広', '廣'),
    ('島', '嶋'),
    ('桜', '櫻'),
    ('吉', '𠮷'),
    ('滝', '瀧'),
    ('真', '眞'),
];

/// One name table: entries most frequent first and their cumulative Zipf–Mandelbrot weights
/// (p ∝ 1/(rank + q)): a few names are very common, most are rare, as in real populations.
struct Table {
    names: Vec<(String, String)>,
    cdf: Vec<f64>,
}

impl Table {
    fn new(top: &[(&str, &str)], compounds: Vec<(String, String)>, q: f64) -> Table {
        let mut names: Vec<(String, String)> = top
            .iter()
            .map(|(k, r)| (k.to_string(), r.to_string()))
            .collect();
        let mut seen: std::collections::HashSet<String> =
            names.iter().map(|n| n.0.clone()).collect();
        // the compounds' rank order is fixed (not the world's seed): one population of names
        let mut rest: Vec<(u64, (String, String))> = compounds
            .into_iter()
            .filter(|n| seen.insert(n.0.clone()))
            .map(|n| {
                let mut h = Rng(n.0.chars().fold(17u64, |a, c| a * 31 + c as u64));
                (h.next(), n)
            })
            .collect();
        rest.sort();
        names.extend(rest.into_iter().map(|x| x.1));
        let mut acc = 0.0;
        let cdf = (0..names.len())
            .map(|r| {
                acc += 1.0 / (r as f64 + 1.0 + q);
                acc
            })
            .collect();
        Table { names, cdf }
    }
    fn sample(&self, r: &mut Rng) -> usize {
        let total = self.cdf[self.cdf.len() - 1];
        let x = (r.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        self.cdf
            .partition_point(|c| *c <= x)
            .min(self.names.len() - 1)
    }
}

struct Tables {
    family: Table,
    male: Table,
    female: Table,
}

fn compounds(
    head: &[(&str, &str)],
    tail: &[(&str, &str, &str)],
    voiced: f64,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, (hk, hr)) in head.iter().enumerate() {
        for (j, (tk, tr, tv)) in tail.iter().enumerate() {
            if hk == tk {
                continue;
            }
            // rendaku is a property of each name, not of each registration
            let mut h = Rng((i * 1000 + j) as u64);
            let r = if h.chance(voiced) { tv } else { tr };
            out.push((format!("{hk}{tk}"), format!("{hr}{r}")));
        }
    }
    out
}

fn tables() -> &'static Tables {
    static T: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let plain = |t: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str, &'static str)> {
            t.iter().map(|(k, r)| (*k, *r, *r)).collect()
        };
        Tables {
            family: Table::new(FAMILY_TOP, compounds(FAM_HEAD, FAM_TAIL, 0.4), 10.0),
            male: Table::new(MALE_TOP, compounds(MALE_HEAD, &plain(MALE_TAIL), 0.0), 30.0),
            female: Table::new(
                FEMALE_TOP,
                compounds(FEMALE_HEAD, &plain(FEMALE_TAIL), 0.0),
                30.0,
            ),
        }
    })
}

fn given_table(sex: Sex) -> &'static Table {
    if sex == Sex::Male {
        &tables().male
    } else {
        &tables().female
    }
}

/// A variant spelling of `kanji` (first character that has one), if any.
fn variant_of(kanji: &str) -> Option<String> {
    let k = kanji
        .chars()
        .position(|c| VARIANTS.iter().any(|v| v.0 == c))?;
    Some(
        kanji
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i == k {
                    VARIANTS.iter().find(|v| v.0 == c).map_or(c, |v| v.1)
                } else {
                    c
                }
            })
            .collect(),
    )
}

// Municipalities: (prefecture, municipality, a few real town names, postal prefix, weight).
// Each gets TOWNS_PER_PLACE towns (the real ones first, then generated), and every town and
// 丁目 its own postal code, so postal codes are about as fine-grained as Japan's.
const PLACES: &[(&str, &str, &[&str], &str, u32)] = &[
    (
        "東京都",
        "千代田区",
        &["千代田", "神田神保町", "麹町"],
        "100",
        2,
    ),
    (
        "東京都",
        "新宿区",
        &["西新宿", "市谷本村町", "高田馬場"],
        "160",
        5,
    ),
    (
        "東京都",
        "世田谷区",
        &["北沢", "太子堂", "三軒茶屋"],
        "154",
        8,
    ),
    (
        "東京都",
        "八王子市",
        &["元本郷町", "明神町", "旭町"],
        "192",
        5,
    ),
    (
        "神奈川県",
        "横浜市中区",
        &["山下町", "本町", "元町"],
        "231",
        5,
    ),
    (
        "神奈川県",
        "川崎市川崎区",
        &["駅前本町", "砂子", "小川町"],
        "210",
        4,
    ),
    (
        "埼玉県",
        "さいたま市大宮区",
        &["桜木町", "大門町", "宮町"],
        "330",
        5,
    ),
    (
        "千葉県",
        "千葉市中央区",
        &["中央", "新町", "富士見"],
        "260",
        5,
    ),
    (
        "大阪府",
        "大阪市北区",
        &["梅田", "中之島", "天満"],
        "530",
        6,
    ),
    (
        "大阪府",
        "堺市堺区",
        &["南瓦町", "大仙町", "戎島町"],
        "590",
        4,
    ),
    ("愛知県", "名古屋市中区", &["栄", "錦", "丸の内"], "460", 6),
    (
        "三重県",
        "四日市市",
        &["諏訪町", "西新地", "浜田町"],
        "510",
        2,
    ),
    (
        "北海道",
        "札幌市中央区",
        &["北一条西", "南二条東", "大通西"],
        "060",
        5,
    ),
    (
        "福岡県",
        "福岡市博多区",
        &["博多駅前", "中洲", "住吉"],
        "812",
        5,
    ),
    (
        "兵庫県",
        "神戸市中央区",
        &["三宮町", "元町通", "加納町"],
        "650",
        4,
    ),
    (
        "京都府",
        "京都市中京区",
        &["河原町", "烏丸", "壬生"],
        "604",
        4,
    ),
    (
        "広島県",
        "広島市中区",
        &["紙屋町", "八丁堀", "大手町"],
        "730",
        3,
    ),
    (
        "宮城県",
        "仙台市青葉区",
        &["一番町", "国分町", "本町"],
        "980",
        3,
    ),
    (
        "新潟県",
        "新潟市中央区",
        &["古町通", "万代", "東大通"],
        "951",
        2,
    ),
    (
        "静岡県",
        "静岡市葵区",
        &["呉服町", "紺屋町", "追手町"],
        "420",
        2,
    ),
    (
        "岡山県",
        "岡山市北区",
        &["表町", "磨屋町", "奉還町"],
        "700",
        2,
    ),
    (
        "熊本県",
        "熊本市中央区",
        &["手取本町", "上通町", "水前寺"],
        "860",
        2,
    ),
    ("長野県", "長野市", &["鶴賀", "南長野", "大門町"], "380", 2),
    (
        "栃木県",
        "宇都宮市",
        &["本町", "馬場通り", "今泉"],
        "320",
        2,
    ),
    ("石川県", "金沢市", &["香林坊", "片町", "広坂"], "920", 2),
    (
        "鹿児島県",
        "鹿児島市",
        &["天文館通", "山下町", "加治屋町"],
        "890",
        2,
    ),
    ("沖縄県", "那覇市", &["久茂地", "松山", "泉崎"], "900", 2),
    (
        "愛媛県",
        "松山市",
        &["大街道", "一番町", "三番町"],
        "790",
        2,
    ),
];
const TOWNS_PER_PLACE: usize = 40;
const TOWN_HEAD: &[&str] = &[
    "本",
    "栄",
    "緑",
    "旭",
    "若葉",
    "桜",
    "富士見",
    "青葉",
    "日の出",
    "松",
    "東",
    "西",
    "南",
    "北",
    "大和",
    "昭和",
    "平和",
    "春日",
    "宮前",
    "新",
];
const TOWN_TAIL: &[&str] = &["町", "台", "が丘", "通", "野", "原"];

/// Town `t` of place `p`.
fn town_name(p: usize, t: usize) -> String {
    let real = PLACES[p].2;
    if t < real.len() {
        return real[t].to_string();
    }
    // a fixed permutation per place, so places do not all share the same town names
    let k = (t * 7 + p * 13) % (TOWN_HEAD.len() * TOWN_TAIL.len());
    format!(
        "{}{}",
        TOWN_HEAD[k / TOWN_TAIL.len()],
        TOWN_TAIL[k % TOWN_TAIL.len()]
    )
}

fn place_cdf() -> &'static Vec<u32> {
    static C: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let mut acc = 0;
        PLACES
            .iter()
            .map(|p| {
                acc += p.4;
                acc
            })
            .collect()
    })
}

fn random_place(r: &mut Rng) -> usize {
    let cdf = place_cdf();
    let x = r.below(cdf[cdf.len() - 1] as usize) as u32;
    cdf.partition_point(|c| *c <= x)
}

const KANJI_NUM: [&str; 10] = ["〇", "一", "二", "三", "四", "五", "六", "七", "八", "九"];

#[derive(Clone)]
struct Person {
    /// Index into the family-name table.
    fam: usize,
    /// Index into the given-name table of `sex`.
    given: usize,
    sex: Sex,
    dob: (i32, u32, u32),
    place: usize,
    town: usize,
    block: (u32, u32, u32),
    phone: String,
    insurer: String,
    symbol: String,
    number: String,
    branch: u32,
    /// Where the person moved to (used by registrations made after the move) and the card
    /// issued there (国保 changes with the municipality).
    new_place: (usize, usize, (u32, u32, u32)),
    new_card: (String, String, String),
}

impl Person {
    fn family(&self) -> (&'static str, &'static str) {
        let n = &tables().family.names[self.fam];
        (n.0.as_str(), n.1.as_str())
    }
    fn given(&self) -> (&'static str, &'static str) {
        let n = &given_table(self.sex).names[self.given];
        (n.0.as_str(), n.1.as_str())
    }
}

fn block(r: &mut Rng) -> (u32, u32, u32) {
    (
        1 + r.below(9) as u32,
        1 + r.below(30) as u32,
        1 + r.below(20) as u32,
    )
}

fn person(r: &mut Rng) -> Person {
    let fam = tables().family.sample(r);
    let sex = if r.chance(0.5) {
        Sex::Male
    } else {
        Sex::Female
    };
    let given = given_table(sex).sample(r);
    Person {
        fam,
        given,
        sex,
        dob: (
            1930 + r.below(85) as i32,
            1 + r.below(12) as u32,
            1 + r.below(28) as u32,
        ),
        place: random_place(r),
        town: r.below(TOWNS_PER_PLACE),
        block: block(r),
        phone: format!(
            "0{}0{:04}{:04}",
            7 + r.below(3),
            r.below(10_000),
            r.below(10_000)
        ),
        insurer: format!("{:06}", r.below(1_000_000)),
        symbol: format!("{}", 1 + r.below(99)),
        number: format!("{}", 1 + r.below(99_999)),
        branch: 1,
        new_place: (random_place(r), r.below(TOWNS_PER_PLACE), block(r)),
        new_card: (
            format!("{:06}", r.below(1_000_000)),
            format!("{}", 1 + r.below(99)),
            format!("{}", 1 + r.below(99_999)),
        ),
    }
}

fn to_wareki(y: i32, m: u32, d: u32) -> String {
    let (era, start) = if (y, m, d) >= (1989, 1, 8) {
        ("平成", 1989)
    } else {
        ("昭和", 1926)
    };
    let (era, start) = if (y, m) >= (2019, 5) {
        ("令和", 2019)
    } else {
        (era, start)
    };
    let n = y - start + 1;
    if n == 1 {
        format!("{era}元年{m}月{d}日")
    } else {
        format!("{era}{n}年{m}月{d}日")
    }
}

fn halfwidth(s: &str) -> String {
    // a small katakana → half-width table (dakuten split) for the kana in this test
    let table: &[(&str, &str)] = &[
        ("ガ", "ｶﾞ"),
        ("ギ", "ｷﾞ"),
        ("グ", "ｸﾞ"),
        ("ゲ", "ｹﾞ"),
        ("ゴ", "ｺﾞ"),
        ("ザ", "ｻﾞ"),
        ("ジ", "ｼﾞ"),
        ("ズ", "ｽﾞ"),
        ("ダ", "ﾀﾞ"),
        ("ド", "ﾄﾞ"),
        ("バ", "ﾊﾞ"),
        ("ブ", "ﾌﾞ"),
        ("ベ", "ﾍﾞ"),
        ("ア", "ｱ"),
        ("イ", "ｲ"),
        ("ウ", "ｳ"),
        ("エ", "ｴ"),
        ("オ", "ｵ"),
        ("カ", "ｶ"),
        ("キ", "ｷ"),
        ("ク", "ｸ"),
        ("ケ", "ｹ"),
        ("コ", "ｺ"),
        ("サ", "ｻ"),
        ("シ", "ｼ"),
        ("ス", "ｽ"),
        ("セ", "ｾ"),
        ("ソ", "ｿ"),
        ("タ", "ﾀ"),
        ("チ", "ﾁ"),
        ("ツ", "ﾂ"),
        ("テ", "ﾃ"),
        ("ト", "ﾄ"),
        ("ナ", "ﾅ"),
        ("ニ", "ﾆ"),
        ("ヌ", "ﾇ"),
        ("ネ", "ﾈ"),
        ("ノ", "ﾉ"),
        ("ハ", "ﾊ"),
        ("ヒ", "ﾋ"),
        ("フ", "ﾌ"),
        ("ヘ", "ﾍ"),
        ("ホ", "ﾎ"),
        ("マ", "ﾏ"),
        ("ミ", "ﾐ"),
        ("ム", "ﾑ"),
        ("メ", "ﾒ"),
        ("モ", "ﾓ"),
        ("ヤ", "ﾔ"),
        ("ユ", "ﾕ"),
        ("ヨ", "ﾖ"),
        ("ラ", "ﾗ"),
        ("リ", "ﾘ"),
        ("ル", "ﾙ"),
        ("レ", "ﾚ"),
        ("ロ", "ﾛ"),
        ("ワ", "ﾜ"),
        ("ン", "ﾝ"),
        ("ョ", "ｮ"),
        ("ュ", "ｭ"),
        ("ャ", "ｬ"),
        ("ッ", "ｯ"),
        (" ", " "),
    ];
    s.chars()
        .map(|c| {
            let cs = c.to_string();
            table
                .iter()
                .find(|(f, _)| *f == cs)
                .map_or(cs, |(_, h)| h.to_string())
        })
        .collect()
}

fn hiragana(s: &str) -> String {
    s.chars()
        .map(|c| {
            if ('ァ'..='ヶ').contains(&c) {
                char::from_u32(c as u32 - 0x60).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

fn kanji_number(n: u32) -> String {
    if n < 10 {
        KANJI_NUM[n as usize].to_string()
    } else {
        let (t, o) = (n / 10, n % 10);
        let tens = if t == 1 {
            "十".to_string()
        } else {
            format!("{}十", KANJI_NUM[t as usize])
        };
        if o == 0 {
            tens
        } else {
            format!("{tens}{}", KANJI_NUM[o as usize])
        }
    }
}

fn fullwidth_digits(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from_u32(c as u32 - 0x30 + 0xFF10).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

/// One hospital's registration of `p`, with noise.
fn register(r: &mut Rng, p: &Person, reg: &str) -> Identity {
    let mut id = Identity::new(reg);
    let (fk, fkana) = p.family();
    let fam_kanji = match variant_of(fk) {
        Some(v) if r.chance(0.4) => v,
        _ => fk.to_string(),
    };
    let (given_kanji, given_kana) = p.given();
    let sep = *r.pick(&["\u{3000}", " ", ""]);
    let mut kana_given = given_kana.to_string();
    let mut kanji_given = given_kanji.to_string();
    // typo in exactly one script (the other stays right)
    if r.chance(0.03) {
        let mut cs: Vec<char> = kana_given.chars().collect();
        let k = r.below(cs.len());
        cs[k] = *r.pick(&['ア', 'カ', 'サ', 'タ', 'ナ', 'ハ', 'マ', 'ラ']);
        kana_given = cs.into_iter().collect();
    } else if r.chance(0.02) && kanji_given.chars().count() >= 2 {
        let mut cs: Vec<char> = kanji_given.chars().collect();
        cs[1] = *r.pick(&['子', '夫', '朗', '一']);
        kanji_given = cs.into_iter().collect();
    }
    // every registration carries a name in at least one script
    let has_kanji = r.chance(0.95);
    if has_kanji {
        id.name_kanji = Some(format!("{fam_kanji}{sep}{kanji_given}"));
    }
    if !has_kanji || r.chance(0.9) {
        let kana = format!("{fkana} {kana_given}");
        id.name_kana = Some(match r.below(4) {
            0 => halfwidth(&kana),
            1 => hiragana(&kana),
            2 => kana.replace(' ', "\u{3000}"),
            _ => kana,
        });
    }
    let (y, mut m, mut d) = p.dob;
    if r.chance(0.02) && d <= 12 {
        std::mem::swap(&mut m, &mut d);
    }
    id.birth_date = Some(match r.below(4) {
        0 => to_wareki(y, m, d),
        1 => format!("{y}/{m}/{d}"),
        2 => fullwidth_digits(&format!("{y}-{m:02}-{d:02}")),
        _ => format!("{y}-{m:02}-{d:02}"),
    });
    id.sex = p.sex;
    // moves: a different place and block
    let (mut place, mut town, mut block) = (p.place, p.town, p.block);
    let moved = r.chance(0.05);
    if moved {
        (place, town, block) = p.new_place;
    }
    let (pref, city, _, zip, _) = PLACES[place];
    let t = town_name(place, town);
    let addr_tail = match r.below(4) {
        0 => format!(
            "{}丁目{}番地{}号",
            kanji_number(block.0),
            kanji_number(block.1),
            kanji_number(block.2)
        ),
        1 => fullwidth_digits(&format!("{}－{}－{}", block.0, block.1, block.2)),
        2 => format!("{}丁目{}番{}号", block.0, block.1, block.2),
        _ => format!("{}-{}-{}", block.0, block.1, block.2),
    };
    if r.chance(0.98) {
        let pref = if r.chance(0.2) { "" } else { pref };
        id.address = Some(format!("{pref}{city}{t}{addr_tail}"));
        id.postal_code = Some(format!("{zip}-{:04}", town as u32 * 100 + block.0 * 10));
    }
    if r.chance(0.92) {
        let ph = &p.phone;
        id.phone = Some(match r.below(3) {
            0 => format!("{}-{}-{}", &ph[..3], &ph[3..7], &ph[7..]),
            1 => fullwidth_digits(ph),
            _ => ph.clone(),
        });
    }
    let (insurer, symbol, number) = if moved && p.fam.is_multiple_of(3) {
        (&p.new_card.0, &p.new_card.1, &p.new_card.2)
    } else {
        (&p.insurer, &p.symbol, &p.number)
    };
    if r.chance(0.9) {
        id.insurer_number = Some(if r.chance(0.5) {
            format!("{insurer:0>8}")
        } else {
            insurer.clone()
        });
        id.insured_symbol = Some(symbol.clone());
        id.insured_number = Some(if r.chance(0.3) {
            format!("{number:0>8}")
        } else {
            number.clone()
        });
        id.insured_branch = Some(if r.chance(0.5) {
            format!("{:02}", p.branch)
        } else {
            p.branch.to_string()
        });
    }
    id
}

pub struct World {
    pub records: Vec<LinkRecord>,
    /// Pairs of person ids that must never share a cluster (twins, namesakes).
    pub hard_pairs: Vec<(String, String, &'static str)>,
}

impl World {
    /// registration → true person id, read back from the registration id (`H07-0000042-1`
    /// belongs to `P42`): computed on demand so that large worlds need not hold it.
    pub fn truth(&self) -> HashMap<String, String> {
        self.records
            .iter()
            .map(|r| {
                let person: usize = r
                    .registration_id
                    .split('-')
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .expect("registration ids are H##-#######-#");
                (r.registration_id.clone(), format!("P{person}"))
            })
            .collect()
    }
}

pub fn world(seed: u64, n_people: usize) -> World {
    world_in(seed, n_people, 8)
}

/// `n_people` persons registered 1–4 times across `hospitals` hospitals (at most one
/// registration per hospital), plus twin pairs (1 % of persons, at least 20: same family
/// name, birth date, address, phone and card with another branch) and namesakes (0.1 %, at
/// least 20: same name, sex and birth date, everything else different). Persons who happen
/// to share name and birth date arise naturally as well, as in a real population.
pub fn world_in(seed: u64, n_people: usize, hospitals: usize) -> World {
    let mut r = Rng(seed);
    let mut people: Vec<Person> = (0..n_people).map(|_| person(&mut r)).collect();
    let n_twins = (n_people / 100).max(20).min(n_people / 2);
    let n_namesakes = (n_people / 1000).max(20).min(n_people / 2);
    let mut hard_pairs = Vec::new();
    for k in 0..n_twins {
        let a = people[k].clone();
        let mut b = a.clone();
        if k.is_multiple_of(3) {
            b.sex = if a.sex == Sex::Male {
                Sex::Female
            } else {
                Sex::Male
            };
            b.given = given_table(b.sex).sample(&mut r);
        }
        while b.given().0 == a.given().0 || b.given().1 == a.given().1 {
            b.given = given_table(b.sex).sample(&mut r);
        }
        b.branch = 2;
        hard_pairs.push((format!("P{k}"), format!("P{}", people.len()), "twin"));
        people.push(b);
    }
    for k in n_twins..n_twins + n_namesakes {
        let a = people[k].clone();
        let mut b = person(&mut r);
        b.fam = a.fam;
        b.given = a.given;
        b.sex = a.sex;
        b.dob = a.dob;
        if b.place == a.place {
            b.place = (b.place + 1) % PLACES.len();
        }
        hard_pairs.push((format!("P{k}"), format!("P{}", people.len()), "namesake"));
        people.push(b);
    }
    // capacity beyond what is used is never touched, so it costs no resident memory
    let mut records = Vec::with_capacity(people.len() * 4.min(hospitals));
    for (pi, p) in people.iter().enumerate() {
        let copies = 1 + r.below(4.min(hospitals));
        let mut hospitals: Vec<usize> = (0..hospitals).collect();
        for c in 0..copies {
            let h = hospitals.remove(r.below(hospitals.len()));
            let reg = format!("H{h:02}-{pi:07}-{c}");
            let id = register(&mut r, p, &reg);
            records.push(LinkRecord {
                registration_id: reg,
                source: format!("H{h:02}"),
                identity: id,
            });
        }
    }
    World {
        records,
        hard_pairs,
    }
}
