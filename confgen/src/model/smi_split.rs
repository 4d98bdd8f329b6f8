//! SMI `TrafficSplit`: a destination whose backends share the traffic by weight.

use xcluster_filter::config::{DestinationConfig, LbPolicy};

use super::istio::HostRef;
use super::{service_hosts, Builder};
use crate::load::Error;

impl Builder<'_> {
    /// A destination per `TrafficSplit`, for its root service, over its backends'
    /// instances.
    pub(super) fn smi_splits(&mut self) -> Result<(), Error> {
        let res = self.res;
        for ts in &res.traffic_splits {
            if !ts.spec.matches.is_empty() {
                return Err(ts.error(
                    "spec.matches",
                    "splits limited to route group matches are not supported; remove matches",
                ));
            }
            let (ns, name) = match self.resolve_host(&ts.spec.service, &ts.namespace) {
                Some(HostRef::Service { namespace, name }) => (namespace, name),
                _ => {
                    return Err(ts.error(
                        "spec.service",
                        format!("{:?} is not a service name", ts.spec.service),
                    ))
                }
            };
            self.claim(format!("service {ns}/{name}"), ts, "spec.service")?;
            let mut millis = Vec::new();
            for (i, b) in ts.spec.backends.iter().enumerate() {
                let w = b.weight.millis().ok_or_else(|| {
                    ts.error(
                        &format!("spec.backends[{i}].weight"),
                        "not an integer or quantity such as 500m",
                    )
                })?;
                millis.push(w);
            }
            let mut drafts = Vec::new();
            let weights = backend_weights(&millis);
            for (i, (b, weight)) in ts.spec.backends.iter().zip(weights).enumerate() {
                let path = format!("spec.backends[{i}].service");
                drafts.extend(self.instances(ts, &path, &ns, &b.service, None, weight)?);
            }
            let dest = DestinationConfig {
                name: format!("{ns}/{name}"),
                hosts: service_hosts(&ns, &name),
                policy: LbPolicy::ActiveActive,
                sticky: None,
                outlier_detection: None,
                slow_start: None,
                health_check: None,
                targets: Vec::new(),
            };
            self.add_destination(ts, dest, drafts, true)?;
        }
        Ok(())
    }
}

/// Backend weights from their thousandths: whole units when every weight is whole
/// (`75`, not `75000`), else thousandths.
fn backend_weights(millis: &[u64]) -> Vec<u64> {
    let scale = if millis.iter().all(|w| w % 1000 == 0) {
        1000
    } else {
        1
    };
    millis.iter().map(|w| w / scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_weights_stay_whole_and_fractions_stay_thousandths() {
        assert_eq!(backend_weights(&[75_000, 25_000]), [75, 25]);
        assert_eq!(backend_weights(&[0, 1000]), [0, 1]);
        assert_eq!(backend_weights(&[500, 1000]), [500, 1000]);
    }
}
