//! Places on the Earth: a validated WGS84 point, a milestone's geofence and the
//! great-circle distance between two points (the contract's haversine, Earth
//! radius 6 371 000 m).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The contract's Earth radius, in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_000.0;

/// The largest geofence radius the contract allows, in metres.
pub const MAX_RADIUS_M: f64 = 100_000.0;

/// Why a coordinate or a radius was refused. Display follows a field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoError {
    /// Not a finite number in −90..=90.
    Latitude,
    /// Not a finite number in −180..=180.
    Longitude,
    /// Not a finite number in (0, 100000].
    Radius,
}

impl GeoError {
    /// The field this error is about, as the contract names it.
    pub fn field(self) -> &'static str {
        match self {
            GeoError::Latitude => "lat",
            GeoError::Longitude => "lng",
            GeoError::Radius => "radius_m",
        }
    }

    /// What is wrong, for `details.fields`.
    pub fn problem(self) -> &'static str {
        match self {
            GeoError::Latitude => "must be a number between -90 and 90",
            GeoError::Longitude => "must be a number between -180 and 180",
            GeoError::Radius => "must be a number greater than 0 and at most 100000",
        }
    }
}

impl fmt::Display for GeoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.problem())
    }
}

impl std::error::Error for GeoError {}

/// A point in decimal degrees (WGS84). Always finite and in range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPoint")]
pub struct GeoPoint {
    lat: f64,
    lng: f64,
}

#[derive(Deserialize)]
struct RawPoint {
    lat: f64,
    lng: f64,
}

impl TryFrom<RawPoint> for GeoPoint {
    type Error = GeoError;

    fn try_from(raw: RawPoint) -> Result<GeoPoint, GeoError> {
        GeoPoint::new(raw.lat, raw.lng)
    }
}

impl GeoPoint {
    /// Refuses NaN, infinities, latitudes outside −90..=90 and longitudes
    /// outside −180..=180 (the latitude is checked first).
    pub fn new(lat: f64, lng: f64) -> Result<GeoPoint, GeoError> {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(GeoError::Latitude); // NaN is in no range
        }
        if !(-180.0..=180.0).contains(&lng) {
            return Err(GeoError::Longitude);
        }
        Ok(GeoPoint { lat, lng })
    }

    pub fn lat(&self) -> f64 {
        self.lat
    }

    pub fn lng(&self) -> f64 {
        self.lng
    }
}

/// A milestone's geofence: a photo must be taken within `radius_m` of the
/// centre. Wire form `{lat, lng, radius_m}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawGeofence", into = "RawGeofence")]
pub struct Geofence {
    center: GeoPoint,
    radius_m: f64,
}

#[derive(Serialize, Deserialize)]
struct RawGeofence {
    lat: f64,
    lng: f64,
    radius_m: f64,
}

impl TryFrom<RawGeofence> for Geofence {
    type Error = GeoError;

    fn try_from(raw: RawGeofence) -> Result<Geofence, GeoError> {
        Geofence::new(GeoPoint::new(raw.lat, raw.lng)?, raw.radius_m)
    }
}

impl From<Geofence> for RawGeofence {
    fn from(fence: Geofence) -> RawGeofence {
        RawGeofence {
            lat: fence.center.lat,
            lng: fence.center.lng,
            radius_m: fence.radius_m,
        }
    }
}

impl Geofence {
    /// Refuses a radius that is not a finite number in (0, 100000].
    pub fn new(center: GeoPoint, radius_m: f64) -> Result<Geofence, GeoError> {
        if !(radius_m > 0.0 && radius_m <= MAX_RADIUS_M) {
            return Err(GeoError::Radius); // also NaN
        }
        Ok(Geofence { center, radius_m })
    }

    /// Parses the three wire fields, reporting the first bad one.
    pub fn parse(lat: f64, lng: f64, radius_m: f64) -> Result<Geofence, GeoError> {
        Geofence::new(GeoPoint::new(lat, lng)?, radius_m)
    }

    pub fn center(&self) -> GeoPoint {
        self.center
    }

    pub fn radius_m(&self) -> f64 {
        self.radius_m
    }

    /// The distance from the centre, and whether it is inside: a point
    /// exactly on the circle is inside (only `distance > radius` is out).
    pub fn locate(&self, point: GeoPoint) -> (f64, bool) {
        let distance = haversine_m(self.center, point);
        (distance, distance <= self.radius_m)
    }
}

/// Great-circle distance in metres:
/// `2R·asin(√(sin²(Δφ/2) + cos φ₁·cos φ₂·sin²(Δλ/2)))`, R = 6 371 000 m.
/// Always finite, ≥ 0 and ≤ πR.
pub fn haversine_m(a: GeoPoint, b: GeoPoint) -> f64 {
    let (phi1, phi2) = (a.lat.to_radians(), b.lat.to_radians());
    let half_dphi = (phi2 - phi1) / 2.0;
    let half_dlambda = (b.lng - a.lng).to_radians() / 2.0;
    let h = half_dphi.sin().powi(2) + phi1.cos() * phi2.cos() * half_dlambda.sin().powi(2);
    // Rounding can push h a hair outside [0, 1], where asin(√h) is NaN.
    2.0 * EARTH_RADIUS_M * h.clamp(0.0, 1.0).sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::f64::consts::PI;

    fn p(lat: f64, lng: f64) -> GeoPoint {
        GeoPoint::new(lat, lng).unwrap()
    }

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not {expected} ± {tolerance}"
        );
    }

    #[test]
    fn points_refuse_out_of_range_and_non_finite_coordinates() {
        for lat in [
            90.000_001,
            -90.000_001,
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
        ] {
            assert_eq!(GeoPoint::new(lat, 0.0), Err(GeoError::Latitude), "{lat}");
        }
        for lng in [180.000_001, -180.000_001, f64::NAN, f64::INFINITY] {
            assert_eq!(GeoPoint::new(0.0, lng), Err(GeoError::Longitude), "{lng}");
        }
        assert_eq!(GeoPoint::new(f64::NAN, f64::NAN), Err(GeoError::Latitude));
        for (lat, lng) in [(90.0, 180.0), (-90.0, -180.0), (0.0, 0.0), (-0.0, -0.0)] {
            assert_eq!(p(lat, lng).lat(), lat);
            assert_eq!(p(lat, lng).lng(), lng);
        }
    }

    #[test]
    fn geofences_refuse_bad_radii() {
        let center = p(4.3, 15.3);
        for radius in [0.0, -0.0, -1.0, 100_000.001, f64::NAN, f64::INFINITY] {
            assert_eq!(
                Geofence::new(center, radius),
                Err(GeoError::Radius),
                "{radius}"
            );
        }
        assert_eq!(
            Geofence::new(center, 100_000.0).unwrap().radius_m(),
            100_000.0
        );
        assert_eq!(Geofence::new(center, 0.001).unwrap().center(), center);
        assert_eq!(Geofence::parse(91.0, 0.0, 0.0), Err(GeoError::Latitude));
        assert_eq!(Geofence::parse(0.0, 181.0, 0.0), Err(GeoError::Longitude));
        assert_eq!(GeoError::Radius.field(), "radius_m");
        assert!(GeoError::Radius.to_string().contains("100000"));
    }

    #[test]
    fn geofence_wire_form_is_flat_and_validated() {
        let fence: Geofence =
            serde_json::from_str(r#"{"lat": -4.3, "lng": 15.3, "radius_m": 250}"#).unwrap();
        assert_eq!(fence, Geofence::parse(-4.3, 15.3, 250.0).unwrap());
        let back = serde_json::to_value(fence).unwrap();
        assert_eq!(back["lat"].as_f64(), Some(-4.3));
        assert_eq!(back["lng"].as_f64(), Some(15.3));
        assert_eq!(back["radius_m"].as_f64(), Some(250.0));
        assert!(
            serde_json::from_str::<Geofence>(r#"{"lat": 0, "lng": 0, "radius_m": 0}"#).is_err()
        );
        assert!(serde_json::from_str::<GeoPoint>(r#"{"lat": 95, "lng": 0}"#).is_err());
    }

    #[test]
    fn known_distances() {
        // Paris (Notre-Dame) to London (Charing Cross): about 343.5 km.
        close(
            haversine_m(p(48.8566, 2.3522), p(51.5074, -0.1278)),
            343_500.0,
            1_000.0,
        );
        // One degree of longitude on the equator: 2πR/360.
        close(
            haversine_m(p(0.0, 0.0), p(0.0, 1.0)),
            2.0 * PI * EARTH_RADIUS_M / 360.0,
            1e-6,
        );
        // Pole to pole, and antipodes across the date line: half the circumference.
        close(
            haversine_m(p(90.0, 0.0), p(-90.0, 0.0)),
            PI * EARTH_RADIUS_M,
            1e-6,
        );
        close(
            haversine_m(p(0.0, 180.0), p(0.0, 0.0)),
            PI * EARTH_RADIUS_M,
            1e-6,
        );
        // 180 and -180 are the same meridian.
        close(haversine_m(p(10.0, 180.0), p(10.0, -180.0)), 0.0, 1e-6);
        let kinshasa = p(-4.3217, 15.3125);
        // A hundred metres north is a hundred metres.
        let north = p(-4.3217 + 100.0 / EARTH_RADIUS_M * 180.0 / PI, 15.3125);
        close(haversine_m(kinshasa, north), 100.0, 1e-6);
    }

    #[test]
    fn points_on_the_circle_are_inside() {
        let center = p(-4.3217, 15.3125);
        let edge = p(-4.3200, 15.3140);
        let exact = haversine_m(center, edge);
        let fence = Geofence::new(center, exact).unwrap();
        assert_eq!(fence.locate(edge), (exact, true));
        let tighter = Geofence::new(center, exact * (1.0 - 1e-12)).unwrap();
        assert!(!tighter.locate(edge).1);
    }

    fn point() -> impl Strategy<Value = GeoPoint> {
        (-90.0..=90.0f64, -180.0..=180.0f64).prop_map(|(lat, lng)| p(lat, lng))
    }

    proptest! {
        #[test]
        fn distance_is_a_bounded_symmetric_metric(a in point(), b in point()) {
            let ab = haversine_m(a, b);
            let ba = haversine_m(b, a);
            prop_assert!(ab.is_finite());
            prop_assert!(ab >= 0.0);
            prop_assert!(ab <= PI * EARTH_RADIUS_M * (1.0 + 1e-12));
            prop_assert!((ab - ba).abs() <= 1e-6, "{} vs {}", ab, ba);
            prop_assert_eq!(haversine_m(a, a), 0.0);
        }

        #[test]
        fn triangle_inequality_holds(a in point(), b in point(), c in point()) {
            prop_assert!(haversine_m(a, c) <= haversine_m(a, b) + haversine_m(b, c) + 1e-6);
        }

        #[test]
        fn any_finite_pair_in_range_is_a_point(lat in -90.0..=90.0f64, lng in -180.0..=180.0f64) {
            prop_assert!(GeoPoint::new(lat, lng).is_ok());
        }
    }
}
