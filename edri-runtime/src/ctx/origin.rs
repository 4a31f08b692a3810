//! [`Origin`]: who sends through a [`Ctx`](super::Ctx).

/// Who sends through a context. It decides what a send may do: code outside managers is
/// refused as soon as the shutdown begins, events from other routers never go back up, a
/// manager cannot wait for its own answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A running manager, by its index in the router's manager list.
    Manager(u32),
    /// Code outside any manager ([`Running::ctx`](crate::Running::ctx)).
    Outside,
    /// Events delivered here from another router or a worker's parent: they never go up
    /// again.
    Remote,
    /// The router's own sends (`Stopping`), which the shutdown does not refuse.
    Router,
}

impl Origin {
    /// The manager's index, for a manager's context.
    #[inline]
    pub(crate) fn index(self) -> Option<usize> {
        match self {
            Self::Manager(i) => Some(i as usize),
            Self::Outside | Self::Remote | Self::Router => None,
        }
    }

    /// Whether this is manager `index`.
    #[inline]
    pub(crate) fn is_manager(self, index: u32) -> bool {
        self == Self::Manager(index)
    }
}
