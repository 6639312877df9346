//! The command-line arguments every tool that reads `template.yaml` takes, and the
//! template they name with its parameters set.

use std::path::PathBuf;

use crate::template::{Template, TemplateError};

/// `--template`, `--stack-name` and `--parameter NAME=VALUE`, as `sam deploy` names them.
#[derive(Debug, Clone, clap::Args)]
pub struct TemplateArgs {
    #[arg(long, default_value = "template.yaml")]
    pub template: PathBuf,
    /// Stack name, for `${AWS::StackName}`.
    #[arg(long, default_value = "fleetwire")]
    pub stack_name: String,
    /// Template parameter override, `Name=Value` (repeatable).
    #[arg(long = "parameter", value_name = "NAME=VALUE")]
    pub parameters: Vec<String>,
}

impl TemplateArgs {
    /// The template, with every `--parameter` set.
    pub fn load(&self) -> Result<Template, TemplateError> {
        let mut template = Template::load(&self.template)?;
        for pair in &self.parameters {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| TemplateError::ParameterSyntax(pair.clone()))?;
            template.set_parameter(name, value)?;
        }
        Ok(template)
    }
}
