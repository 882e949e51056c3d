pub use vmlab_mm as mm;
