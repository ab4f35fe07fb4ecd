//! A deployment's backend as a supervised production service: wire types and pure rules.
